#pragma once
// Just enough XML for S3 and STS responses: their documents are flat records of known
// elements, so elements are found by name (no namespaces, no attributes needed) and their
// text is entity-decoded.

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gravl::storage::s3 {

// The inner XML of every element named `tag` directly or indirectly inside `xml`, in
// document order. An element of the same name nested in a match is not returned separately.
std::vector<std::string_view> XmlElements(std::string_view xml, std::string_view tag);
// The decoded text of the first element named `tag`, or nullopt.
std::optional<std::string> XmlText(std::string_view xml, std::string_view tag);

std::string XmlEscape(std::string_view text);
// Decodes the five named entities and numeric references (&#38; &#x26;).
std::string XmlUnescape(std::string_view text);

}  // namespace gravl::storage::s3
