#include "parameter_file.hpp"

#include <fstream>

namespace eipnn {

namespace {

std::string Trim(std::string const & text) {
  std::size_t const begin = text.find_first_not_of(" \t\r");
  if (begin == std::string::npos) return "";
  std::size_t const end = text.find_last_not_of(" \t\r");
  return text.substr(begin, end - begin + 1);
}

}  // namespace

bool ReadParameterFile(std::string const & path, std::string const & directory,
                       DriverParameters * out, std::string * error) {
  std::ifstream stream(path);
  if (!stream) {
    *error = "cannot open the parameter file '" + path + "'";
    return false;
  }
  std::string line;
  for (int number = 1; std::getline(stream, line); ++number) {
    line = Trim(line.substr(0, line.find('#')));
    if (line.empty()) continue;
    std::size_t const equals = line.find('=');
    if (equals == std::string::npos) {
      *error = "line " + std::to_string(number) + " of the parameter file '" + path
               + "' is not 'key = value': '" + line + "'";
      return false;
    }
    std::string const key = Trim(line.substr(0, equals));
    std::string const value = Trim(line.substr(equals + 1));
    if (key == "model_file") {
      out->model_file = value;
    } else if (key == "device") {
      out->device = value;
    } else if (key == "periodic_images") {
      if (value != "fold" && value != "evaluate") {
        *error = "periodic_images in the parameter file '" + path + "' is '" + value
                 + "'; it must be fold or evaluate";
        return false;
      }
      out->fold_periodic_images = value == "fold";
    } else {
      *error = "unknown key '" + key + "' in the parameter file '" + path
               + "' (known: model_file, device, periodic_images)";
      return false;
    }
  }
  if (out->model_file.empty()) {
    *error = "the parameter file '" + path + "' names no model_file";
    return false;
  }
  if (out->model_file[0] != '/') out->model_file = directory + "/" + out->model_file;
  return true;
}

}  // namespace eipnn
