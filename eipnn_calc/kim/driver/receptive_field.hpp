// Which particles and edges the model needs: the receptive field of the contributing
// particles, found by breadth-first search over the simulator's neighbour lists.
//
// A message-passing model with L layers gives a contributing particle an energy that depends
// on particles up to L edges (each shorter than the cutoff) away. A particle d edges away
// must have correct features after L - d layers, so it needs its incoming edges when
// d < L; particles exactly L edges away are only senders, and particles further away are
// left out. This keeps the model's work well below "every padding particle with its list".
// Edges come ordered by their receiver's distance d, so the edges a layer needs are a
// prefix: the last layer only those into contributing particles (d = 0), the layer before
// those with d <= 1, and so on (ModelGraph::layer_edges).
#ifndef EIPNN_RECEPTIVE_FIELD_HPP_
#define EIPNN_RECEPTIVE_FIELD_HPP_

#include <functional>
#include <string>

#include "model_graph.hpp"

namespace eipnn {

// The simulator's particles as KIM hands them over.
struct ParticleArrays {
  int count = 0;
  int const * species_codes = nullptr;  // model species index of each particle
  int const * contributing = nullptr;
  double const * coordinates = nullptr;  // [count*3] Å
};

// Neighbours of one particle from the simulator's full list; false if the simulator failed.
using NeighborSource = std::function<bool(int particle, int * count, int const ** neighbors)>;

bool BuildModelGraph(ParticleArrays const & particles, double cutoff_angstrom, int num_layers,
                     NeighborSource const & neighbors_of, ModelGraph * graph,
                     std::string * error);

}  // namespace eipnn

#endif  // EIPNN_RECEPTIVE_FIELD_HPP_
