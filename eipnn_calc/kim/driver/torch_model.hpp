// The TorchScript model file behind a narrow interface, so that only torch_model.cpp
// includes (and compiles against) the libtorch headers.
#ifndef EIPNN_TORCH_MODEL_HPP_
#define EIPNN_TORCH_MODEL_HPP_

#include <memory>
#include <string>

#include "model_graph.hpp"
#include "model_metadata.hpp"

namespace eipnn {

class TorchModel {
 public:
  // Load the model file at `path` onto `device`; nullptr and a reason in `error` on failure.
  static std::unique_ptr<TorchModel> Load(std::string const & path, std::string const & device,
                                          std::string * error);
  ~TorchModel();

  ModelMetadata const & metadata() const;

  // Run the scripted entry point on `graph`; false and a reason in `error` on failure.
  bool Evaluate(ModelGraph const & graph, ModelResults * results, std::string * error);

 private:
  struct Impl;
  explicit TorchModel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace eipnn

#endif  // EIPNN_TORCH_MODEL_HPP_
