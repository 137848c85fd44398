// A small JSON reader: enough to read the metadata document of an eipnn model file
// without pulling a JSON library into the driver's build.
#ifndef EIPNN_JSON_READER_HPP_
#define EIPNN_JSON_READER_HPP_

#include <string>
#include <vector>

namespace eipnn {

struct JsonValue {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject };
  Kind kind = Kind::kNull;
  bool boolean = false;
  double number = 0.0;
  std::string text;
  std::vector<JsonValue> items;      // array elements, or object values
  std::vector<std::string> keys;     // object keys, parallel to items

  // The member named `key` of an object, or nullptr.
  JsonValue const * Find(std::string const & key) const;
};

// Parse `text` into `out`; on failure return false and say where in `error`.
bool ParseJson(std::string const & text, JsonValue * out, std::string * error);

}  // namespace eipnn

#endif  // EIPNN_JSON_READER_HPP_
