// What the driver hands the TorchScript model: the particles inside the receptive field of
// the contributing particles and the edges the model's layers need, plus the results.
#ifndef EIPNN_MODEL_GRAPH_HPP_
#define EIPNN_MODEL_GRAPH_HPP_

#include <array>
#include <cstdint>
#include <vector>

namespace eipnn {

struct ModelGraph {
  std::vector<int> particle;          // [n] KIM particle index of each node
  std::vector<std::int64_t> species;  // [n] model species index
  std::vector<double> positions;      // [n*3] Å
  std::vector<std::uint8_t> contributing;  // [n] node_mask: summed into the energy
  std::vector<std::int64_t> receivers;     // [E] edge i <- j: i = edge_index[0]
  std::vector<std::int64_t> senders;       // [E] j = edge_index[1]
  // [E*3] Å: positions[j] + shift - positions[i] is the edge vector; empty means all zero
  // (padding particles are nodes of their own; periodic_images.hpp folds them instead).
  std::vector<double> shifts;
  // [E] folded graphs only: the simulator's particle each edge comes from (an image, whose
  // owner is the sender node); the forces of the edge go to it.
  std::vector<int> edge_source;
  bool folded = false;  // built by BuildFoldedGraph (periodic_images.hpp)
  // [layers] layer l needs only the first layer_edges[l] edges: those whose receiver is at
  // most (layers - 1 - l) edges from a contributing particle (edges come in that order).
  std::vector<std::int64_t> layer_edges;
  // Nodes [0, receiving_nodes) have all their incoming edges (fewer than `layers` edges from
  // a contributing particle); the others are only senders.
  std::int64_t receiving_nodes = 0;

  std::size_t NumNodes() const { return particle.size(); }
};

struct ModelResults {
  double energy_eV = 0.0;
  std::vector<double> energies_eV;    // [n]
  std::vector<double> forces_eV_per_angstrom;  // [n*3]
  std::array<double, 9> virial_eV{};  // row-major 3x3, eipnn sign: -sum_e r_e (x) dE/dr_e
  std::vector<double> edge_gradients_eV_per_angstrom;  // [E*3] dE/dr_e, format 3 on
};

}  // namespace eipnn

#endif  // EIPNN_MODEL_GRAPH_HPP_
