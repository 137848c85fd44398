// The portable model's parameter file: `key = value` lines, '#' starts a comment.
//
//   model_file = Si_schnet.pt   # relative to the parameter file, or absolute
//   device = cpu                # or cuda, cuda:N
//   periodic_images = fold      # or evaluate: padding particles as nodes of their own
#ifndef EIPNN_PARAMETER_FILE_HPP_
#define EIPNN_PARAMETER_FILE_HPP_

#include <string>

namespace eipnn {

struct DriverParameters {
  std::string model_file;  // resolved to a full path
  std::string device = "cpu";
  // Fold padding particles that are periodic images onto their owners (periodic_images.hpp);
  // false evaluates them as particles of their own, as for MPI domains.
  bool fold_periodic_images = true;
};

// Read `path`; a relative model_file is taken relative to `directory`.
bool ReadParameterFile(std::string const & path, std::string const & directory,
                       DriverParameters * out, std::string * error);

}  // namespace eipnn

#endif  // EIPNN_PARAMETER_FILE_HPP_
