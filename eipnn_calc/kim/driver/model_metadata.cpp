#include "model_metadata.hpp"

#include "json_reader.hpp"

namespace eipnn {

namespace {

bool Fail(std::string * error, std::string const & what) {
  *error = "the model's metadata " + what;
  return false;
}

bool ReadSpecies(JsonValue const & root, ModelMetadata * out, std::string * error) {
  JsonValue const * species = root.Find("species");
  if (species == nullptr || species->kind != JsonValue::Kind::kArray || species->items.empty())
    return Fail(error, "has no 'species' list");
  for (JsonValue const & item : species->items) {
    if (item.kind != JsonValue::Kind::kString)
      return Fail(error, "has a 'species' entry that is not a string");
    out->species.push_back(item.text);
  }
  return true;
}

bool ReadNumber(JsonValue const & root, char const * key, double * out, std::string * error) {
  JsonValue const * value = root.Find(key);
  if (value == nullptr || value->kind != JsonValue::Kind::kNumber)
    return Fail(error, std::string("has no number '") + key + "'");
  *out = value->number;
  return true;
}

}  // namespace

bool ParseModelMetadata(std::string const & json, ModelMetadata * out, std::string * error) {
  JsonValue root;
  std::string json_error;
  if (!ParseJson(json, &root, &json_error))
    return Fail(error, "is not valid JSON: " + json_error);
  if (root.kind != JsonValue::Kind::kObject) return Fail(error, "is not a JSON object");

  double version = 0, layers = 0;
  if (!ReadNumber(root, "format_version", &version, error)) return false;
  out->format_version = static_cast<int>(version);
  if (out->format_version > kFormatVersion)
    return Fail(error, "has format version " + std::to_string(out->format_version)
                           + ", newer than this driver reads (" + std::to_string(kFormatVersion)
                           + "); rebuild the driver from a newer eipnn");
  if (!ReadSpecies(root, out, error)) return false;
  if (!ReadNumber(root, "cutoff_angstrom", &out->cutoff_angstrom, error)) return false;
  if (!(out->cutoff_angstrom > 0)) return Fail(error, "has a non-positive cutoff_angstrom");
  if (!ReadNumber(root, "num_layers", &layers, error)) return false;
  out->num_layers = static_cast<int>(layers);
  if (out->num_layers < 1) return Fail(error, "has num_layers < 1");

  JsonValue const * dtype = root.Find("dtype");
  if (dtype == nullptr || dtype->kind != JsonValue::Kind::kString
      || (dtype->text != "float32" && dtype->text != "float64"))
    return Fail(error, "has no dtype 'float32' or 'float64'");
  out->dtype = dtype->text;
  return true;
}

}  // namespace eipnn
