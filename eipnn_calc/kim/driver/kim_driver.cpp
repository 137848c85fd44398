// KIM API model driver for eipnn TorchScript model files.
//
// The portable model's parameter file names the model file; the driver reads the species,
// cutoff and number of layers from the model's metadata, asks the simulator for a full
// neighbour list with the model's cutoff (including lists of padding particles, which the
// receptive field needs) and an influence distance of cutoff * layers, and evaluates the
// model's scripted entry point on the receptive field of the contributing particles, or,
// when the padding particles are periodic images of the contributing ones, on the
// contributing particles alone with image shifts (periodic_images.hpp).
#include <algorithm>
#include <iostream>
#include <memory>
#include <string>

#include "KIM_ModelDriverHeaders.hpp"
#include "parameter_file.hpp"
#include "periodic_images.hpp"
#include "python_gil.hpp"
#include "receptive_field.hpp"
#include "torch_model.hpp"

namespace {

struct DriverBuffer {
  std::unique_ptr<eipnn::TorchModel> model;
  double cutoff_angstrom = 0.0;
  double influence_distance_angstrom = 0.0;
  // The receptive field needs neighbours of padding particles: ask for them.
  int will_not_request_noncontributing = 0;
  eipnn::ModelGraph graph;  // reused between calls to keep its allocations
  eipnn::ModelResults results;
  bool fold_periodic_images = true;
  eipnn::PeriodicImages images;
  bool images_found = false;  // `images` held on the last call
  enum class Mode { kUnset, kNoPadding, kFolded, kPadded } mode = Mode::kUnset;  // of the last call, logged on change
};

// Errors go to the KIM log (kim.log) and to stderr, where LAMMPS and ASE users see them.
template <class KimObject>
int Error(KimObject const * kim, std::string const & message) {
  std::string const text = "eipnn KIM driver: " + message;
  kim->LogEntry(KIM::LOG_VERBOSITY::error, text, __LINE__, __FILE__);
  std::cerr << text << std::endl;
  return true;  // KIM: a non-zero return means failure
}

bool ParameterFilePath(KIM::ModelDriverCreate * create, std::string * directory,
                       std::string * path) {
  int count = 0;
  create->GetNumberOfParameterFiles(&count);
  std::string const * dir = nullptr;
  std::string const * base = nullptr;
  if (count < 1) return false;
  create->GetParameterFileDirectoryName(&dir);
  if (create->GetParameterFileBasename(0, &base)) return false;
  *directory = *dir;
  *path = *dir + "/" + *base;
  return true;
}

int RegisterSpecies(KIM::ModelDriverCreate * create, eipnn::ModelMetadata const & metadata) {
  for (std::size_t k = 0; k < metadata.species.size(); ++k) {
    KIM::SpeciesName const name(metadata.species[k]);
    if (!name.Known() || create->SetSpeciesCode(name, static_cast<int>(k)))
      return Error(create, "the model's species '" + metadata.species[k]
                               + "' is not a species the KIM API knows");
  }
  return false;
}

int Destroy(KIM::ModelDestroy * const destroy) {
  DriverBuffer * buffer = nullptr;
  destroy->GetModelBufferPointer(reinterpret_cast<void **>(&buffer));
  delete buffer;
  return false;
}

int ComputeArgumentsCreate(KIM::ModelCompute const * const,
                           KIM::ModelComputeArgumentsCreate * const create) {
  int error = 0;
  for (KIM::ComputeArgumentName const name :
       {KIM::COMPUTE_ARGUMENT_NAME::partialEnergy, KIM::COMPUTE_ARGUMENT_NAME::partialForces,
        KIM::COMPUTE_ARGUMENT_NAME::partialParticleEnergy,
        KIM::COMPUTE_ARGUMENT_NAME::partialVirial})
    error = error || create->SetArgumentSupportStatus(name, KIM::SUPPORT_STATUS::optional);
  return error;
}

int ComputeArgumentsDestroy(KIM::ModelCompute const * const,
                            KIM::ModelComputeArgumentsDestroy * const) {
  return false;
}

struct Outputs {
  double * energy = nullptr;
  double * forces = nullptr;
  double * particle_energy = nullptr;
  double * virial = nullptr;
};

int GetArguments(KIM::ModelComputeArguments const * args, eipnn::ParticleArrays * particles,
                 Outputs * out) {
  namespace N = KIM::COMPUTE_ARGUMENT_NAME;
  int const * count = nullptr;
  int error = args->GetArgumentPointer(N::numberOfParticles, &count)
              || args->GetArgumentPointer(N::particleSpeciesCodes, &particles->species_codes)
              || args->GetArgumentPointer(N::particleContributing, &particles->contributing)
              || args->GetArgumentPointer(N::coordinates, &particles->coordinates)
              || args->GetArgumentPointer(N::partialEnergy, &out->energy)
              || args->GetArgumentPointer(N::partialForces, &out->forces)
              || args->GetArgumentPointer(N::partialParticleEnergy, &out->particle_energy)
              || args->GetArgumentPointer(N::partialVirial, &out->virial);
  if (error) return Error(args, "cannot read the compute arguments from the simulator");
  particles->count = *count;
  return false;
}

int CheckSpecies(KIM::ModelComputeArguments const * args,
                 eipnn::ParticleArrays const & particles, eipnn::ModelMetadata const & metadata) {
  int const known = static_cast<int>(metadata.species.size());
  for (int p = 0; p < particles.count; ++p) {
    int const code = particles.species_codes[p];
    if (code < 0 || code >= known) {
      std::string list;
      for (std::string const & s : metadata.species) list += (list.empty() ? "" : ", ") + s;
      return Error(args, "particle " + std::to_string(p) + " has species code "
                             + std::to_string(code) + ", which this model does not have; "
                             "it knows only " + list);
    }
  }
  return false;
}

// Forces of a folded graph, edge by edge: -dE/dr_e on the particle the edge comes from (an
// image or a contributing particle), +dE/dr_e on its receiver. They sum, over a particle and
// its images, to the model's force on it, and give sum_p x_p (x) f_p = the virial, which is
// what simulators do with padding forces (LAMMPS adds them onto their owners; ASE's KIM
// calculator also takes its stress from them).
void WriteEdgeForces(eipnn::ModelGraph const & graph, eipnn::ModelResults const & results,
                     double * forces) {
  double const * gradient = results.edge_gradients_eV_per_angstrom.data();
  for (std::size_t e = 0; e < graph.receivers.size(); ++e) {
    int const receiver = graph.particle[graph.receivers[e]];
    int const source = graph.edge_source[e];
    for (int k = 0; k < 3; ++k) {
      forces[3 * receiver + k] += gradient[3 * e + k];
      forces[3 * source + k] -= gradient[3 * e + k];
    }
  }
}

// Write the model's results where the simulator asked for them (padding entries included:
// the simulator folds padding forces back onto the particles they image).
void WriteOutputs(eipnn::ModelGraph const & graph, eipnn::ModelResults const & results,
                  int count, Outputs const & out) {
  if (out.energy) *out.energy = results.energy_eV;
  if (out.forces) std::fill(out.forces, out.forces + 3 * count, 0.0);
  if (out.particle_energy) std::fill(out.particle_energy, out.particle_energy + count, 0.0);
  bool const folded = graph.folded;
  if (out.forces && folded) WriteEdgeForces(graph, results, out.forces);
  for (std::size_t node = 0; node < graph.NumNodes(); ++node) {
    int const p = graph.particle[node];
    if (out.particle_energy && graph.contributing[node])
      out.particle_energy[p] = results.energies_eV[node];
    if (out.forces && !folded)
      for (int k = 0; k < 3; ++k) out.forces[3 * p + k] = results.forces_eV_per_angstrom[3 * node + k];
  }
  if (out.virial) {
    // KIM's virial is sum_e r_e (x) dE/dr_e (the negative of eipnn's), ordered
    // xx, yy, zz, yz, xz, xy.
    auto const & w = results.virial_eV;
    double const kim[6] = {-w[0], -w[4], -w[8], -w[5], -w[2], -w[1]};
    std::copy(kim, kim + 6, out.virial);
  }
}

bool HasPadding(eipnn::ParticleArrays const & particles) {
  for (int p = 0; p < particles.count; ++p)
    if (!particles.contributing[p]) return true;
  return false;
}

// The graph the model runs on: folded onto the contributing particles when the padding
// particles are their periodic images (checked as periodic_images.hpp says), otherwise the
// receptive field of the padded particles. A change of mode goes to the KIM log. Returns
// true on failure, as KIM routines do.
int BuildGraph(KIM::ModelComputeArguments const * args, eipnn::ParticleArrays const & particles,
               eipnn::NeighborSource const & neighbors_of, DriverBuffer * buffer,
               std::string * error) {
  using Mode = DriverBuffer::Mode;
  int const layers = buffer->model->metadata().num_layers;
  double const cutoff = buffer->cutoff_angstrom;
  bool built_padded = false;
  bool found = false;
  std::string why_padded = "periodic_images = evaluate in the parameter file";
  bool const padding = HasPadding(particles);
  int const format = buffer->model->metadata().format_version;
  if (buffer->fold_periodic_images && format < eipnn::kEdgeGradientsFormatVersion)
    why_padded = "the model file is format " + std::to_string(format)
                 + ", which returns no edge gradients; re-export it with eipnn-export to fold "
                   "periodic images";
  if (buffer->fold_periodic_images && padding && format >= eipnn::kEdgeGradientsFormatVersion) {
    found = buffer->images_found && eipnn::StillPeriodicImages(particles, &buffer->images);
    if (!found && eipnn::FindPeriodicImages(particles, &buffer->images, &why_padded)) {
      if (!eipnn::BuildModelGraph(particles, cutoff, layers, neighbors_of, &buffer->graph, error))
        return true;
      built_padded = true;
      found = eipnn::ReceptiveFieldRepeats(buffer->graph, buffer->images, &why_padded);
    }
  }
  buffer->images_found = found;
  Mode const mode = !padding ? Mode::kNoPadding : found ? Mode::kFolded : Mode::kPadded;
  if (mode != buffer->mode) {
    std::string const message =
        mode == Mode::kNoPadding ? "no padding particles: the model runs on the contributing ones"
        : mode == Mode::kFolded
            ? "the padding particles are periodic images of the contributing ones: the model "
              "runs on the contributing particles with image shifts"
            : "the model runs on the padding particles too (" + why_padded + ")";
    args->LogEntry(KIM::LOG_VERBOSITY::information, "eipnn KIM driver: " + message, __LINE__,
                   __FILE__);
    buffer->mode = mode;
  }
  bool const built =
      mode == Mode::kFolded
          ? eipnn::BuildFoldedGraph(particles, cutoff, layers, neighbors_of, buffer->images,
                                    &buffer->graph, error)
          : built_padded
                || eipnn::BuildModelGraph(particles, cutoff, layers, neighbors_of, &buffer->graph,
                                          error);
  return !built;
}

int Compute(KIM::ModelCompute const * const compute,
            KIM::ModelComputeArguments const * const args) {
  DriverBuffer * buffer = nullptr;
  compute->GetModelBufferPointer(reinterpret_cast<void **>(&buffer));
  eipnn::ParticleArrays particles;
  Outputs out;
  if (GetArguments(args, &particles, &out)) return true;
  eipnn::ModelMetadata const & metadata = buffer->model->metadata();
  if (CheckSpecies(args, particles, metadata)) return true;

  auto neighbors_of = [args](int particle, int * count, int const ** neighbors) {
    return !args->GetNeighborList(0, particle, count, neighbors);
  };
  std::string error;
  if (BuildGraph(args, particles, neighbors_of, buffer, &error)) return Error(args, error);
  if (buffer->graph.NumNodes() == 0) {  // nothing contributes: zero energy, zero forces
    buffer->results = eipnn::ModelResults();
  } else {
    bool evaluated = false;
    {
      eipnn::ScopedGilRelease no_gil;  // see python_gil.hpp
      evaluated = buffer->model->Evaluate(buffer->graph, &buffer->results, &error);
    }
    if (!evaluated) return Error(args, error);
  }
  WriteOutputs(buffer->graph, buffer->results, particles.count, out);
  return false;
}

template <class Routine>
int SetRoutine(KIM::ModelDriverCreate * create, KIM::ModelRoutineName name, Routine * routine) {
  return create->SetRoutinePointer(name, KIM::LANGUAGE_NAME::cpp, true,
                                   reinterpret_cast<KIM::Function *>(routine));
}

}  // namespace

// The create routine named in CMakeLists.txt (CREATE_ROUTINE_NAME); the KIM item wrapper
// declares it with C linkage.
extern "C" int eipnn_driver_create(KIM::ModelDriverCreate * const create,
                        KIM::LengthUnit const, KIM::EnergyUnit const, KIM::ChargeUnit const,
                        KIM::TemperatureUnit const, KIM::TimeUnit const) {
  std::string directory, parameter_path, error;
  if (!ParameterFilePath(create, &directory, &parameter_path))
    return Error(create, "the portable model has no parameter file; re-export it with "
                         "eipnn-export-kim");
  eipnn::DriverParameters parameters;
  if (!eipnn::ReadParameterFile(parameter_path, directory, &parameters, &error))
    return Error(create, error);
  auto buffer = std::make_unique<DriverBuffer>();
  buffer->fold_periodic_images = parameters.fold_periodic_images;
  buffer->model = eipnn::TorchModel::Load(parameters.model_file, parameters.device, &error);
  if (!buffer->model) return Error(create, error);

  eipnn::ModelMetadata const & metadata = buffer->model->metadata();
  buffer->cutoff_angstrom = metadata.cutoff_angstrom;
  buffer->influence_distance_angstrom = metadata.InfluenceDistanceAngstrom();

  // eipnn models work in eV and Å; the simulator converts if it asked for other units.
  int failed = create->SetUnits(KIM::LENGTH_UNIT::A, KIM::ENERGY_UNIT::eV,
                                KIM::CHARGE_UNIT::unused, KIM::TEMPERATURE_UNIT::unused,
                                KIM::TIME_UNIT::unused)
               || create->SetModelNumbering(KIM::NUMBERING::zeroBased)
               || RegisterSpecies(create, metadata);
  if (failed) return Error(create, "cannot register the model's units, numbering or species");
  create->SetInfluenceDistancePointer(&buffer->influence_distance_angstrom);
  create->SetNeighborListPointers(1, &buffer->cutoff_angstrom,
                                  &buffer->will_not_request_noncontributing);
  // No Refresh routine: the model publishes no parameters a simulator could change.
  namespace R = KIM::MODEL_ROUTINE_NAME;
  failed = SetRoutine(create, R::ComputeArgumentsCreate, ComputeArgumentsCreate)
           || SetRoutine(create, R::Compute, Compute)
           || SetRoutine(create, R::ComputeArgumentsDestroy, ComputeArgumentsDestroy)
           || SetRoutine(create, R::Destroy, Destroy);
  if (failed) return Error(create, "cannot register the driver's routines with the KIM API");
  create->SetModelBufferPointer(buffer.release());
  return false;
}
