#include "torch_model.hpp"

#include <sys/stat.h>

#include <torch/csrc/jit/runtime/graph_executor.h>
#include <torch/script.h>

#include <cstring>
#include <unordered_map>

namespace eipnn {

struct TorchModel::Impl {
  torch::jit::Module module;
  ModelMetadata metadata;
  torch::Device device = torch::kCPU;
  torch::ScalarType dtype = torch::kFloat64;
};

TorchModel::TorchModel(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TorchModel::~TorchModel() = default;

ModelMetadata const & TorchModel::metadata() const { return impl_->metadata; }

namespace {

bool FileExists(std::string const & path) {
  struct stat info;
  return stat(path.c_str(), &info) == 0 && S_ISREG(info.st_mode);
}

}  // namespace

std::unique_ptr<TorchModel> TorchModel::Load(std::string const & path,
                                             std::string const & device,
                                             std::string * error) {
  if (!FileExists(path)) {
    *error = "model file '" + path + "' does not exist; export it with eipnn-export-kim "
             "(or fix model_file in the parameter file)";
    return nullptr;
  }
  auto impl = std::make_unique<Impl>();
  std::unordered_map<std::string, std::string> extra{{kMetadataName, ""}};
  try {
    impl->device = torch::Device(device);
    impl->module = torch::jit::load(path, impl->device, extra);
  } catch (std::exception const & err) {
    *error = "cannot load '" + path + "' as a TorchScript model on device '" + device
             + "': " + err.what();
    return nullptr;
  }
  if (extra[kMetadataName].empty()) {
    *error = "'" + path + "' is TorchScript but not an eipnn model: it has no "
             + std::string(kMetadataName);
    return nullptr;
  }
  std::string metadata_error;
  if (!ParseModelMetadata(extra[kMetadataName], &impl->metadata, &metadata_error)) {
    *error = "'" + path + "': " + metadata_error;
    return nullptr;
  }
  impl->dtype = impl->metadata.dtype == "float32" ? torch::kFloat32 : torch::kFloat64;
  impl->module.eval();
  return std::unique_ptr<TorchModel>(new TorchModel(std::move(impl)));
}

namespace {

// Copy a tensor's values, as float64 on the CPU, into `out`.
void CopyOut(torch::Tensor const & tensor, double * out) {
  torch::Tensor const host = tensor.to(torch::kCPU, torch::kFloat64).contiguous();
  std::memcpy(out, host.data_ptr<double>(), sizeof(double) * host.numel());
}

torch::Tensor Int64Tensor(std::vector<std::int64_t> const & values, torch::Device device) {
  auto const count = static_cast<std::int64_t>(values.size());
  return torch::from_blob(const_cast<std::int64_t *>(values.data()), {count}, torch::kInt64)
      .to(device, /*non_blocking=*/false, /*copy=*/true);
}

}  // namespace

bool TorchModel::Evaluate(ModelGraph const & graph, ModelResults * results,
                          std::string * error) {
  Impl & m = *impl_;
  auto const n = static_cast<std::int64_t>(graph.NumNodes());
  auto const num_edges = static_cast<std::int64_t>(graph.receivers.size());
  auto const floats = torch::TensorOptions().dtype(m.dtype).device(m.device);
  try {
    // Forces and the virial come from autograd inside the module.
    torch::AutoGradMode grad_enabled(true);
    // No graph-executor optimisation: the edge count changes on every MD step (edges are
    // cut at r_c here, not with a skin), and the profiling executor would re-specialise the
    // graph for each new shape; on the CPU the optimised graph is no faster anyway.
    torch::jit::GraphOptimizerEnabledGuard no_respecialising(false);
    torch::Tensor positions =
        torch::from_blob(const_cast<double *>(graph.positions.data()), {n, 3}, torch::kFloat64)
            .to(floats, /*non_blocking=*/false, /*copy=*/true);
    torch::Tensor edge_index =
        torch::stack({Int64Tensor(graph.receivers, m.device), Int64Tensor(graph.senders, m.device)});
    torch::Tensor node_mask =
        torch::from_blob(const_cast<std::uint8_t *>(graph.contributing.data()), {n}, torch::kUInt8)
            .to(m.device, torch::kBool);
    torch::Tensor shifts =
        graph.shifts.empty()
            ? torch::zeros({num_edges, 3}, floats)
            : torch::from_blob(const_cast<double *>(graph.shifts.data()), {num_edges, 3},
                               torch::kFloat64)
                  .to(floats, /*non_blocking=*/false, /*copy=*/true);
    std::vector<torch::jit::IValue> inputs{positions, Int64Tensor(graph.species, m.device),
                                           edge_index, shifts, node_mask};
    if (m.metadata.format_version >= kLayerEdgesFormatVersion)
      inputs.emplace_back(Int64Tensor(graph.layer_edges, m.device));
    c10::Dict<c10::IValue, c10::IValue> out = m.module.forward(inputs).toGenericDict();

    results->energies_eV.resize(n);
    results->forces_eV_per_angstrom.resize(3 * n);
    results->energy_eV = out.at("energy").toTensor().to(torch::kCPU, torch::kFloat64).item<double>();
    CopyOut(out.at("energies").toTensor(), results->energies_eV.data());
    CopyOut(out.at("forces").toTensor(), results->forces_eV_per_angstrom.data());
    CopyOut(out.at("virial").toTensor(), results->virial_eV.data());
    results->edge_gradients_eV_per_angstrom.clear();
    if (m.metadata.format_version >= kEdgeGradientsFormatVersion) {
      results->edge_gradients_eV_per_angstrom.resize(3 * num_edges);
      CopyOut(out.at("edge_gradients").toTensor(), results->edge_gradients_eV_per_angstrom.data());
    }
  } catch (std::exception const & err) {
    *error = std::string("the model's forward failed: ") + err.what();
    return false;
  }
  return true;
}

}  // namespace eipnn
