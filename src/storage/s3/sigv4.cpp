#include "storage/s3/sigv4.h"

#include <algorithm>
#include <cctype>
#include <map>

#include "io/crypto.h"
#include "io/hash.h"

namespace gravl::storage::s3 {
namespace {

std::string Lower(std::string s) {
  for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

// Trims and turns every run of whitespace (including line breaks of folded values) into a
// single space.
std::string CanonicalValue(const std::string& value) {
  std::string out;
  bool space = false;
  for (char c : value) {
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r') {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

// Removes "." and ".." segments and empty segments (duplicate slashes), keeping a trailing
// slash.
std::string NormalizePath(const std::string& path) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (start <= path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    std::string seg = path.substr(start, end - start);
    if (seg == "..") {
      if (!parts.empty()) parts.pop_back();
    } else if (!seg.empty() && seg != ".") {
      parts.push_back(seg);
    }
    start = end + 1;
  }
  std::string out;
  for (const auto& p : parts) out += "/" + p;
  bool trailing =
      path.size() > 1 && (path.back() == '/' || path.ends_with("/.") || path.ends_with("/.."));
  if (out.empty()) return "/";
  if (trailing) out += "/";
  return out;
}

std::string Hex(const Bytes& b) { return HexEncode(b); }

}  // namespace

std::string UriEncode(const std::string& text, bool keep_slash) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (char ch : text) {
    auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' ||
        (keep_slash && c == '/')) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

std::string UriDecode(const std::string& text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '%' && i + 2 < text.size() &&
        std::isxdigit(static_cast<unsigned char>(text[i + 1])) &&
        std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
      out += static_cast<char>(std::stoi(text.substr(i + 1, 2), nullptr, 16));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

Signature Sign(const SigningRequest& request, const Credentials& credentials,
               const SigningOptions& options) {
  // Canonical URI.
  std::string path = request.path.empty() ? "/" : request.path;
  if (options.normalize_path) path = NormalizePath(path);
  std::string uri = UriEncode(path, true);

  // Canonical query: encoded names and values, sorted by name then value.
  std::vector<std::pair<std::string, std::string>> query;
  for (const auto& [k, v] : request.query)
    query.emplace_back(UriEncode(k, false), UriEncode(v, false));
  std::sort(query.begin(), query.end());
  std::string canonical_query;
  for (const auto& [k, v] : query) {
    if (!canonical_query.empty()) canonical_query += '&';
    canonical_query += k + "=" + v;
  }

  // Canonical headers: lower-case names, sorted; repeated names joined with ','.
  Signature sig;
  std::vector<std::pair<std::string, std::string>> all = request.headers;
  bool has_token = std::any_of(all.begin(), all.end(), [](const auto& h) {
    return Lower(h.first) == "x-amz-security-token";
  });
  if (!credentials.session_token.empty() && !has_token) {
    sig.added_headers.emplace_back("X-Amz-Security-Token", credentials.session_token);
    all.emplace_back("X-Amz-Security-Token", credentials.session_token);
  }
  std::map<std::string, std::string> headers;
  for (const auto& [name, value] : all) {
    std::string key = Lower(name);
    std::string v = CanonicalValue(value);
    auto it = headers.find(key);
    if (it == headers.end()) {
      headers[key] = v;
    } else {
      it->second += "," + v;
    }
  }
  std::string canonical_headers, signed_headers;
  for (const auto& [k, v] : headers) {
    canonical_headers += k + ":" + v + "\n";
    if (!signed_headers.empty()) signed_headers += ';';
    signed_headers += k;
  }

  sig.canonical_request = request.method + "\n" + uri + "\n" + canonical_query + "\n" +
                          canonical_headers + "\n" + signed_headers + "\n" + request.payload_sha256;
  std::string date = options.amz_date.substr(0, 8);
  std::string scope = date + "/" + options.region + "/" + options.service + "/aws4_request";
  sig.string_to_sign = "AWS4-HMAC-SHA256\n" + options.amz_date + "\n" + scope + "\n" +
                       io::Sha256Hex(AsBytes(sig.canonical_request));

  std::string secret = "AWS4" + credentials.secret_access_key;
  Bytes k_date = io::HmacSha256(AsBytes(secret), AsBytes(date));
  Bytes k_region = io::HmacSha256(k_date, AsBytes(options.region));
  Bytes k_service = io::HmacSha256(k_region, AsBytes(options.service));
  Bytes k_signing = io::HmacSha256(k_service, AsBytes(std::string_view("aws4_request")));
  std::string signature = Hex(io::HmacSha256(k_signing, AsBytes(sig.string_to_sign)));
  sig.authorization = "AWS4-HMAC-SHA256 Credential=" + credentials.access_key_id + "/" + scope +
                      ", SignedHeaders=" + signed_headers + ", Signature=" + signature;
  return sig;
}

}  // namespace gravl::storage::s3
