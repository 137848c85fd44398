#include "json_reader.hpp"

#include <cctype>
#include <cstdlib>

namespace eipnn {

JsonValue const * JsonValue::Find(std::string const & key) const {
  if (kind != Kind::kObject) return nullptr;
  for (std::size_t i = 0; i < keys.size(); ++i) {
    if (keys[i] == key) return &items[i];
  }
  return nullptr;
}

namespace {

// Recursive-descent parser over one string; `pos` only moves forward.
class Parser {
 public:
  explicit Parser(std::string const & text) : text_(text) {}

  bool ParseDocument(JsonValue * out, std::string * error) {
    if (!ParseValue(out, 0)) {
      *error = message_ + " at character " + std::to_string(pos_);
      return false;
    }
    SkipSpace();
    if (pos_ != text_.size()) {
      *error = "trailing characters after the JSON document at character "
               + std::to_string(pos_);
      return false;
    }
    return true;
  }

 private:
  static constexpr int kMaxDepth = 64;

  bool Fail(std::string const & what) {
    message_ = what;
    return false;
  }

  void SkipSpace() {
    while (pos_ < text_.size() && std::isspace(static_cast<unsigned char>(text_[pos_])))
      ++pos_;
  }

  bool Consume(char expected) {
    SkipSpace();
    if (pos_ < text_.size() && text_[pos_] == expected) {
      ++pos_;
      return true;
    }
    return false;
  }

  bool ParseValue(JsonValue * out, int depth) {
    if (depth > kMaxDepth) return Fail("JSON nested too deeply");
    SkipSpace();
    if (pos_ >= text_.size()) return Fail("unexpected end of JSON");
    char const c = text_[pos_];
    if (c == '{') return ParseObject(out, depth);
    if (c == '[') return ParseArray(out, depth);
    if (c == '"') {
      out->kind = JsonValue::Kind::kString;
      return ParseString(&out->text);
    }
    if (ParseLiteral("true")) {
      out->kind = JsonValue::Kind::kBool;
      out->boolean = true;
      return true;
    }
    if (ParseLiteral("false")) {
      out->kind = JsonValue::Kind::kBool;
      return true;
    }
    if (ParseLiteral("null")) {
      out->kind = JsonValue::Kind::kNull;
      return true;
    }
    return ParseNumber(out);
  }

  bool ParseLiteral(char const * word) {
    std::string const literal(word);
    if (text_.compare(pos_, literal.size(), literal) != 0) return false;
    pos_ += literal.size();
    return true;
  }

  bool ParseNumber(JsonValue * out) {
    char const * begin = text_.c_str() + pos_;
    char * end = nullptr;
    double const value = std::strtod(begin, &end);
    if (end == begin) return Fail("expected a JSON value");
    pos_ += static_cast<std::size_t>(end - begin);
    out->kind = JsonValue::Kind::kNumber;
    out->number = value;
    return true;
  }

  bool ParseString(std::string * out) {
    if (!Consume('"')) return Fail("expected a string");
    out->clear();
    while (pos_ < text_.size()) {
      char const c = text_[pos_++];
      if (c == '"') return true;
      if (c != '\\') {
        out->push_back(c);
        continue;
      }
      if (pos_ >= text_.size()) break;
      char const escaped = text_[pos_++];
      switch (escaped) {
        case 'n': out->push_back('\n'); break;
        case 't': out->push_back('\t'); break;
        case 'r': out->push_back('\r'); break;
        case 'b': out->push_back('\b'); break;
        case 'f': out->push_back('\f'); break;
        case 'u':
          // Metadata keys and species are ASCII; keep other code points as '?'.
          if (pos_ + 4 > text_.size()) return Fail("truncated \\u escape");
          pos_ += 4;
          out->push_back('?');
          break;
        default: out->push_back(escaped);  // \" \\ \/
      }
    }
    return Fail("unterminated string");
  }

  bool ParseArray(JsonValue * out, int depth) {
    Consume('[');
    out->kind = JsonValue::Kind::kArray;
    if (Consume(']')) return true;
    do {
      out->items.emplace_back();
      if (!ParseValue(&out->items.back(), depth + 1)) return false;
    } while (Consume(','));
    return Consume(']') || Fail("expected ',' or ']' in an array");
  }

  bool ParseObject(JsonValue * out, int depth) {
    Consume('{');
    out->kind = JsonValue::Kind::kObject;
    if (Consume('}')) return true;
    do {
      SkipSpace();
      out->keys.emplace_back();
      if (!ParseString(&out->keys.back())) return false;
      if (!Consume(':')) return Fail("expected ':' after an object key");
      out->items.emplace_back();
      if (!ParseValue(&out->items.back(), depth + 1)) return false;
    } while (Consume(','));
    return Consume('}') || Fail("expected ',' or '}' in an object");
  }

  std::string const & text_;
  std::size_t pos_ = 0;
  std::string message_;
};

}  // namespace

bool ParseJson(std::string const & text, JsonValue * out, std::string * error) {
  *out = JsonValue();
  return Parser(text).ParseDocument(out, error);
}

}  // namespace eipnn
