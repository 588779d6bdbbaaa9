#include "storage/s3/xml.h"

#include <cstdint>

namespace gravl::storage::s3 {
namespace {

// Position of the next start tag `<tag>`, `<tag ...>` or `<tag/>` at or after `from`.
std::size_t FindStart(std::string_view xml, std::string_view tag, std::size_t from) {
  while (true) {
    std::size_t pos = xml.find('<', from);
    if (pos == std::string_view::npos) return pos;
    std::size_t end = pos + 1 + tag.size();
    if (xml.compare(pos + 1, tag.size(), tag) == 0 && end < xml.size() &&
        (xml[end] == '>' || xml[end] == ' ' || xml[end] == '/' || xml[end] == '\t' ||
         xml[end] == '\n' || xml[end] == '\r')) {
      return pos;
    }
    from = pos + 1;
  }
}

void AppendUtf8(std::string& out, std::uint32_t cp) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace

std::vector<std::string_view> XmlElements(std::string_view xml, std::string_view tag) {
  std::vector<std::string_view> out;
  std::string close = "</" + std::string(tag) + ">";
  std::size_t pos = 0;
  while ((pos = FindStart(xml, tag, pos)) != std::string_view::npos) {
    std::size_t gt = xml.find('>', pos);
    if (gt == std::string_view::npos) break;
    if (xml[gt - 1] == '/') {  // <tag/>
      out.emplace_back();
      pos = gt + 1;
      continue;
    }
    // Skip nested elements of the same name.
    std::size_t depth = 1, scan = gt + 1, end = std::string_view::npos;
    while (depth > 0) {
      std::size_t next_close = xml.find(close, scan);
      if (next_close == std::string_view::npos) break;
      std::size_t next_open = FindStart(xml, tag, scan);
      if (next_open != std::string_view::npos && next_open < next_close) {
        std::size_t ogt = xml.find('>', next_open);
        if (ogt != std::string_view::npos && xml[ogt - 1] != '/') ++depth;
        scan = next_open + 1;
        continue;
      }
      if (--depth == 0) end = next_close;
      scan = next_close + close.size();
    }
    if (end == std::string_view::npos) break;  // unterminated: ignore the rest
    out.push_back(xml.substr(gt + 1, end - gt - 1));
    pos = end + close.size();
  }
  return out;
}

std::optional<std::string> XmlText(std::string_view xml, std::string_view tag) {
  auto all = XmlElements(xml, tag);
  if (all.empty()) return std::nullopt;
  return XmlUnescape(all.front());
}

std::string XmlEscape(std::string_view text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      case '\r':
        out += "&#13;";
        break;
      case '\n':
        out += "&#10;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string XmlUnescape(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '&') {
      out += text[i];
      continue;
    }
    std::size_t semi = text.find(';', i);
    if (semi == std::string_view::npos || semi - i > 10) {
      out += text[i];
      continue;
    }
    std::string_view entity = text.substr(i + 1, semi - i - 1);
    if (entity == "amp") {
      out += '&';
    } else if (entity == "lt") {
      out += '<';
    } else if (entity == "gt") {
      out += '>';
    } else if (entity == "quot") {
      out += '"';
    } else if (entity == "apos") {
      out += '\'';
    } else if (entity.size() > 1 && entity[0] == '#') {
      std::uint32_t cp = 0;
      bool hex = entity[1] == 'x' || entity[1] == 'X';
      bool ok = entity.size() > (hex ? 2u : 1u);
      for (std::size_t k = hex ? 2 : 1; k < entity.size() && ok; ++k) {
        char c = entity[k];
        std::uint32_t digit;
        if (c >= '0' && c <= '9') {
          digit = static_cast<std::uint32_t>(c - '0');
        } else if (hex && c >= 'a' && c <= 'f') {
          digit = static_cast<std::uint32_t>(c - 'a' + 10);
        } else if (hex && c >= 'A' && c <= 'F') {
          digit = static_cast<std::uint32_t>(c - 'A' + 10);
        } else {
          ok = false;
          break;
        }
        cp = cp * (hex ? 16u : 10u) + digit;
        if (cp > 0x10FFFF) ok = false;
      }
      if (!ok) {
        out += text[i];
        continue;
      }
      AppendUtf8(out, cp);
    } else {
      out += text[i];
      continue;
    }
    i = semi;
  }
  return out;
}

}  // namespace gravl::storage::s3
