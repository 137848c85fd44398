// Padding particles that are periodic images of contributing ones, folded back onto them.
//
// A single-process simulator with a periodic box (LAMMPS on one rank, ASE's KIM calculator)
// pads the box with copies of its own atoms shifted by lattice vectors. Evaluating those
// copies as particles of their own (receptive_field.hpp) repeats the same work: with L
// layers of cutoff r_c the padding is L * r_c thick, and for a paper-size SchNet on 512 Si
// atoms it holds 40 times as many particles as the box. When every padding particle p is an
// exact image x_p = x_owner + n_p . B of a contributing particle (B a lattice basis, n_p
// integers), the model can instead run on the contributing particles alone, each edge to an
// image becoming an edge to its owner with the image's shift, which is the graph
// EIPNNCalculator builds from the cell.
//
// Exactness. The basis and owners are found from the positions (FindPeriodicImages). Before
// the folded graph is used, the receptive-field graph of the padded particles is checked to
// repeat periodically (ReceptiveFieldRepeats): every particle that receives edges in it has,
// up to its image shift, the neighbours (owners and relative images) of its owner. By
// induction over the layers every padding particle then has its owner's features, and the
// folded model gives the padded model's energies, forces and virial. Later calls reuse the
// owners while every particle is still its owner's image under the basis measured anew
// from the same particles (StillPeriodicImages: O(particles), and it follows a box that
// changes shape, as under NPT). Anything else (MPI domains, whose padding comes from other
// ranks; mixed boundaries; a vacancy in the padding of a perfect crystal) fails a check and
// the driver evaluates the padding particles as before.
#ifndef EIPNN_PERIODIC_IMAGES_HPP_
#define EIPNN_PERIODIC_IMAGES_HPP_

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "model_graph.hpp"
#include "receptive_field.hpp"

namespace eipnn {

// Positions of an image and of its owner plus the lattice shift agree to this (Å): a
// simulator computes an image as owner + shift in float64, exact to ~1e-13 Å.
constexpr double kImageToleranceAngstrom = 1e-9;

struct PeriodicImages {
  // The particle arrays they were found on: reused only while these are unchanged.
  std::vector<int> species;
  std::vector<std::uint8_t> contributing;
  std::vector<int> owner;                 // [count] contributing particle (itself if contributing)
  std::vector<std::array<int, 3>> image;  // [count] n_p: x_p = x_owner + n_p . basis
  int anchor = -1;                        // basis vector k = x[basis_end[k]] - x[anchor]
  std::array<int, 3> basis_end{};
  std::array<double, 9> basis{};          // row k = basis vector k (Å)
};

// Owners and images of every particle under a lattice basis found from the positions;
// false, with the reason, if some particle is not an image of a contributing particle.
bool FindPeriodicImages(ParticleArrays const & particles, PeriodicImages * images,
                        std::string * reason);

// True if `images` still describes `particles` (same arrays, every particle its owner's
// image under the basis measured again from the same particles); updates the basis.
bool StillPeriodicImages(ParticleArrays const & particles, PeriodicImages * images);

// True if the padded receptive-field graph (BuildModelGraph) repeats periodically under
// `images`, which makes the folded graph exact; otherwise false and the reason.
bool ReceptiveFieldRepeats(ModelGraph const & padded, PeriodicImages const & images,
                           std::string * reason);

// The graph on the contributing particles alone: edges to images go to their owners, with
// the image shift in ModelGraph::shifts; every layer takes every edge.
bool BuildFoldedGraph(ParticleArrays const & particles, double cutoff_angstrom, int num_layers,
                      NeighborSource const & neighbors_of, PeriodicImages const & images,
                      ModelGraph * graph, std::string * error);

}  // namespace eipnn

#endif  // EIPNN_PERIODIC_IMAGES_HPP_
