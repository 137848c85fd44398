// The part of an eipnn model file's metadata (eipnn_metadata.json) the driver uses.
#ifndef EIPNN_MODEL_METADATA_HPP_
#define EIPNN_MODEL_METADATA_HPP_

#include <string>
#include <vector>

namespace eipnn {

// Highest model-file format version this driver reads (eipnn_calc/model_file.py).
constexpr int kFormatVersion = 3;
// From this format on, forward takes layer_edges (edges each layer needs) as a sixth input.
constexpr int kLayerEdgesFormatVersion = 2;
// From this format on, forward returns edge_gradients (dE/dr_e), which folding needs.
constexpr int kEdgeGradientsFormatVersion = 3;
constexpr char kMetadataName[] = "eipnn_metadata.json";

struct ModelMetadata {
  std::vector<std::string> species;  // the model's species index k means species[k]
  double cutoff_angstrom = 0.0;
  int num_layers = 0;                // message-passing steps: receptive field = cutoff * layers
  std::string dtype;                 // "float32" or "float64": the tensors' floating dtype
  int format_version = 0;

  double InfluenceDistanceAngstrom() const { return cutoff_angstrom * num_layers; }
};

// Read and check the metadata JSON; on failure say what is wrong in `error`.
bool ParseModelMetadata(std::string const & json, ModelMetadata * out, std::string * error);

}  // namespace eipnn

#endif  // EIPNN_MODEL_METADATA_HPP_
