#include "periodic_images.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

namespace eipnn {

namespace {

using Vec3 = std::array<double, 3>;

Vec3 PositionOf(ParticleArrays const & particles, int p) {
  double const * x = particles.coordinates + 3 * p;
  return {x[0], x[1], x[2]};
}

Vec3 Minus(Vec3 const & a, Vec3 const & b) { return {a[0] - b[0], a[1] - b[1], a[2] - b[2]}; }
Vec3 Plus(Vec3 const & a, Vec3 const & b) { return {a[0] + b[0], a[1] + b[1], a[2] + b[2]}; }
double Dot(Vec3 const & a, Vec3 const & b) { return a[0] * b[0] + a[1] * b[1] + a[2] * b[2]; }
Vec3 Cross(Vec3 const & a, Vec3 const & b) {
  return {a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]};
}

Vec3 Row(std::array<double, 9> const & basis, int k) {
  return {basis[3 * k], basis[3 * k + 1], basis[3 * k + 2]};
}

// n . basis: the Cartesian shift of lattice coordinates n.
Vec3 Shift(std::array<double, 9> const & basis, std::array<int, 3> const & n) {
  Vec3 shift{0.0, 0.0, 0.0};
  for (int k = 0; k < 3; ++k)
    for (int d = 0; d < 3; ++d) shift[d] += n[k] * basis[3 * k + d];
  return shift;
}

bool IsImage(Vec3 const & x, Vec3 const & owner, Vec3 const & shift) {
  Vec3 const miss = Minus(x, Plus(owner, shift));
  return Dot(miss, miss) < kImageToleranceAngstrom * kImageToleranceAngstrom;
}

// Particles on a grid of 1 Å cells, to find the particle at a point in O(1).
class PositionIndex {
 public:
  explicit PositionIndex(ParticleArrays const & particles) : particles_(particles) {
    entries_.reserve(particles.count);
    for (int p = 0; p < particles.count; ++p) {
      Vec3 const x = PositionOf(particles, p);
      entries_.emplace_back(Key(Cell(x[0]), Cell(x[1]), Cell(x[2])), p);
    }
    std::sort(entries_.begin(), entries_.end());
  }

  // A particle of `species` within the image tolerance of `point`, or -1.
  int Find(Vec3 const & point, int species) const {
    std::int64_t lo[3], hi[3];
    for (int d = 0; d < 3; ++d) {
      lo[d] = Cell(point[d] - kImageToleranceAngstrom);
      hi[d] = Cell(point[d] + kImageToleranceAngstrom);
    }
    for (std::int64_t a = lo[0]; a <= hi[0]; ++a)
      for (std::int64_t b = lo[1]; b <= hi[1]; ++b)
        for (std::int64_t c = lo[2]; c <= hi[2]; ++c) {
          auto const first = std::lower_bound(entries_.begin(), entries_.end(),
                                              std::make_pair(Key(a, b, c), -1));
          for (auto it = first; it != entries_.end() && it->first == Key(a, b, c); ++it) {
            int const p = it->second;
            if (particles_.species_codes[p] == species
                && IsImage(PositionOf(particles_, p), point, {0.0, 0.0, 0.0}))
              return p;
          }
        }
    return -1;
  }

 private:
  static std::int64_t Cell(double x) { return static_cast<std::int64_t>(std::floor(x)); }
  // 21 bits per axis: cells -2^20 .. 2^20 Å (FindPeriodicImages refuses positions beyond).
  static std::int64_t Key(std::int64_t a, std::int64_t b, std::int64_t c) {
    constexpr std::int64_t offset = std::int64_t{1} << 20;
    return ((a + offset) << 42) | ((b + offset) << 21) | (c + offset);
  }

  ParticleArrays const & particles_;
  std::vector<std::pair<std::int64_t, int>> entries_;
};

constexpr double kLargestCoordinateAngstrom = 1e6;
// Contributing particles near the anchor that a candidate lattice vector must map onto
// particles; a random padding particle's offset fails this at once.
constexpr int kSampleSize = 8;
// Candidates tried before giving up (each failure costs one or two grid look-ups).
constexpr std::size_t kMaxCandidates = 200000;

// The contributing particle at the low corner of the contributing particles (smallest
// x + y + z): images of it across the faces near that corner lie just outside the box, inside
// the padding, however thin the padding is compared with the box.
int CornerParticle(ParticleArrays const & particles) {
  int corner = -1;
  double lowest = 0.0;
  for (int p = 0; p < particles.count; ++p) {
    if (!particles.contributing[p]) continue;
    Vec3 const x = PositionOf(particles, p);
    double const height = x[0] + x[1] + x[2];
    if (corner < 0 || height < lowest) {
      corner = p;
      lowest = height;
    }
  }
  return corner;
}

// The anchor and the contributing particles nearest it.
std::vector<int> SampleAround(ParticleArrays const & particles, int anchor) {
  Vec3 const center = PositionOf(particles, anchor);
  std::vector<std::pair<double, int>> by_distance;
  for (int p = 0; p < particles.count; ++p) {
    if (!particles.contributing[p]) continue;
    Vec3 const delta = Minus(PositionOf(particles, p), center);
    by_distance.emplace_back(Dot(delta, delta), p);
  }
  std::size_t const size = std::min<std::size_t>(kSampleSize, by_distance.size());
  std::partial_sort(by_distance.begin(), by_distance.begin() + size, by_distance.end());
  std::vector<int> sample;
  for (std::size_t k = 0; k < size; ++k) sample.push_back(by_distance[k].second);
  return sample;
}

// True if `t` carries no contributing particle onto a contributing particle. A period of the
// simulator's box carries the box onto a copy beside it; a shorter symmetry of a perfect
// crystal (a primitive vector in a supercell) carries most of the box onto itself, and would
// make the owner of an image ambiguous.
bool LeavesTheBox(ParticleArrays const & particles, PositionIndex const & index, Vec3 const & t) {
  for (int c = 0; c < particles.count; ++c) {
    if (!particles.contributing[c]) continue;
    int const q = index.Find(Plus(PositionOf(particles, c), t), particles.species_codes[c]);
    if (q >= 0 && particles.contributing[q]) return false;
  }
  return true;
}

// Three shortest offsets from the anchor to particles of its species that, one by one, are
// independent of those chosen before, carry every sampled particle onto a particle and no
// contributing particle onto another: in three dimensions the successive minima of a
// lattice form a basis of it. Whether it is the basis of all the padding is decided by the
// owner search and ReceptiveFieldRepeats.
bool FindBasis(ParticleArrays const & particles, PositionIndex const & index,
               PeriodicImages * images, std::string * reason) {
  int const anchor = images->anchor;
  Vec3 const origin = PositionOf(particles, anchor);
  int const species = particles.species_codes[anchor];
  std::vector<std::pair<double, int>> candidates;
  for (int p = 0; p < particles.count; ++p) {
    if (p == anchor || particles.species_codes[p] != species) continue;
    Vec3 const offset = Minus(PositionOf(particles, p), origin);
    double const squared = Dot(offset, offset);
    if (squared > 1e-6) candidates.emplace_back(squared, p);
  }
  std::sort(candidates.begin(), candidates.end());
  std::vector<int> const sample = SampleAround(particles, anchor);
  int found = 0;
  std::size_t tried = 0;
  for (auto const & [squared, p] : candidates) {
    if (found == 3 || ++tried > kMaxCandidates) break;
    Vec3 const t = Minus(PositionOf(particles, p), origin);
    double const length = std::sqrt(squared);
    if (found == 1) {
      Vec3 const a = Row(images->basis, 0);
      Vec3 const normal = Cross(a, t);
      if (std::sqrt(Dot(normal, normal)) <= 1e-6 * std::sqrt(Dot(a, a)) * length) continue;
    } else if (found == 2) {
      Vec3 const a = Row(images->basis, 0), b = Row(images->basis, 1);
      double const volume = std::abs(Dot(Cross(a, b), t));
      if (volume <= 1e-6 * std::sqrt(Dot(a, a) * Dot(b, b)) * length) continue;
    }
    bool maps = true;
    for (int const c : sample) {
      if (index.Find(Plus(PositionOf(particles, c), t), particles.species_codes[c]) < 0) {
        maps = false;
        break;
      }
    }
    if (!maps || !LeavesTheBox(particles, index, t)) continue;
    for (int d = 0; d < 3; ++d) images->basis[3 * found + d] = t[d];
    images->basis_end[found++] = p;
  }
  if (found < 3) {
    *reason = "the padding particles do not repeat the contributing ones along three "
              "independent lattice vectors";
    return false;
  }
  return true;
}

bool Invert(std::array<double, 9> const & m, std::array<double, 9> * inverse) {
  Vec3 const a = Row(m, 0), b = Row(m, 1), c = Row(m, 2);
  Vec3 const bc = Cross(b, c), ca = Cross(c, a), ab = Cross(a, b);
  double const det = Dot(a, bc);
  if (det == 0.0) return false;
  // Rows of m are basis vectors; x = u . m  =>  u = x . m^-1, with m^-1 = [bc ca ab] / det
  // as columns.
  for (int d = 0; d < 3; ++d) {
    (*inverse)[3 * d + 0] = bc[d] / det;
    (*inverse)[3 * d + 1] = ca[d] / det;
    (*inverse)[3 * d + 2] = ab[d] / det;
  }
  return true;
}

Vec3 Fractional(Vec3 const & x, std::array<double, 9> const & inverse) {
  Vec3 u{0.0, 0.0, 0.0};
  for (int d = 0; d < 3; ++d)
    for (int k = 0; k < 3; ++k) u[k] += x[d] * inverse[3 * d + k];
  return u;
}

// Owner and image of every padding particle: the contributing particle of its species whose
// fractional coordinates differ from its own by integers, found on a grid over the unit
// cell of fractional coordinates (wrapped).
bool FindOwners(ParticleArrays const & particles, PeriodicImages * images, std::string * reason) {
  std::array<double, 9> inverse{};
  if (!Invert(images->basis, &inverse)) {
    *reason = "the lattice vectors found are not independent";
    return false;
  }
  Vec3 const origin = PositionOf(particles, images->anchor);
  std::vector<Vec3> fractional(particles.count);
  int contributing = 0;
  for (int p = 0; p < particles.count; ++p) {
    fractional[p] = Fractional(Minus(PositionOf(particles, p), origin), inverse);
    contributing += particles.contributing[p] ? 1 : 0;
  }
  int const cells = std::clamp(static_cast<int>(std::cbrt(contributing / 2.0)), 1, 64);
  auto cell_of = [cells](double u) {
    int const cell = static_cast<int>(std::floor((u - std::floor(u)) * cells));
    return ((cell % cells) + cells) % cells;
  };
  std::vector<std::pair<int, int>> grid;  // (cell id, contributing particle), sorted
  for (int p = 0; p < particles.count; ++p) {
    if (!particles.contributing[p]) continue;
    Vec3 const & u = fractional[p];
    grid.emplace_back((cell_of(u[0]) * cells + cell_of(u[1])) * cells + cell_of(u[2]), p);
  }
  std::sort(grid.begin(), grid.end());
  constexpr double slack = 1e-7;  // fractional: far above the rounding of exact images
  images->owner.assign(particles.count, -1);
  images->image.assign(particles.count, {0, 0, 0});
  for (int p = 0; p < particles.count; ++p) {
    if (particles.contributing[p]) {
      images->owner[p] = p;
      continue;
    }
    Vec3 const & u = fractional[p];
    Vec3 const x = PositionOf(particles, p);
    int lo[3], hi[3];
    for (int d = 0; d < 3; ++d) {
      lo[d] = cell_of(u[d] - slack);
      hi[d] = cell_of(u[d] + slack);
    }
    // Neighbouring cells (wrapped) when u sits on a cell boundary: at most 2 per axis.
    for (int a : {lo[0], hi[0]}) {
      for (int b : {lo[1], hi[1]}) {
        for (int c : {lo[2], hi[2]}) {
          if (images->owner[p] >= 0) break;
          int const id = (a * cells + b) * cells + c;
          for (auto it = std::lower_bound(grid.begin(), grid.end(), std::make_pair(id, -1));
               it != grid.end() && it->first == id; ++it) {
            int const q = it->second;
            if (particles.species_codes[q] != particles.species_codes[p]) continue;
            std::array<int, 3> n{};
            bool integral = true;
            for (int d = 0; d < 3; ++d) {
              double const delta = u[d] - fractional[q][d];
              double const rounded = std::round(delta);
              integral = integral && std::abs(delta - rounded) < slack && std::abs(rounded) < 1e6;
              n[d] = static_cast<int>(rounded);
            }
            if (integral && IsImage(x, PositionOf(particles, q), Shift(images->basis, n))) {
              images->owner[p] = q;
              images->image[p] = n;
              break;
            }
          }
        }
      }
    }
    if (images->owner[p] < 0) {
      *reason = "padding particle " + std::to_string(p)
                + " is not a periodic image of a contributing particle";
      return false;
    }
  }
  return true;
}

struct EdgeKey {
  int owner;
  std::array<int, 3> image;  // of the sender relative to the receiver
  bool operator<(EdgeKey const & other) const {
    return owner != other.owner ? owner < other.owner : image < other.image;
  }
  bool operator==(EdgeKey const & other) const {
    return owner == other.owner && image == other.image;
  }
};

}  // namespace

bool FindPeriodicImages(ParticleArrays const & particles, PeriodicImages * images,
                        std::string * reason) {
  for (int k = 0; k < 3 * particles.count; ++k) {
    if (!(std::abs(particles.coordinates[k]) < kLargestCoordinateAngstrom)) {
      *reason = "a particle lies more than 1e6 Å from the origin";
      return false;
    }
  }
  images->anchor = CornerParticle(particles);
  if (images->anchor < 0) {
    *reason = "no particle contributes";
    return false;
  }
  PositionIndex const index(particles);
  if (!FindBasis(particles, index, images, reason) || !FindOwners(particles, images, reason))
    return false;
  images->species.assign(particles.species_codes, particles.species_codes + particles.count);
  images->contributing.resize(particles.count);
  for (int p = 0; p < particles.count; ++p)
    images->contributing[p] = particles.contributing[p] ? 1 : 0;
  return true;
}

bool StillPeriodicImages(ParticleArrays const & particles, PeriodicImages * images) {
  if (static_cast<std::size_t>(particles.count) != images->owner.size()) return false;
  for (int p = 0; p < particles.count; ++p) {
    if (particles.species_codes[p] != images->species[p]
        || (particles.contributing[p] ? 1 : 0) != images->contributing[p])
      return false;
  }
  // The same particles measure the basis again: a box that changed shape moves them too.
  Vec3 const origin = PositionOf(particles, images->anchor);
  for (int k = 0; k < 3; ++k) {
    Vec3 const t = Minus(PositionOf(particles, images->basis_end[k]), origin);
    for (int d = 0; d < 3; ++d) images->basis[3 * k + d] = t[d];
  }
  for (int p = 0; p < particles.count; ++p) {
    if (particles.contributing[p]) continue;
    Vec3 const shift = Shift(images->basis, images->image[p]);
    if (!IsImage(PositionOf(particles, p), PositionOf(particles, images->owner[p]), shift))
      return false;
  }
  return true;
}

bool ReceptiveFieldRepeats(ModelGraph const & padded, PeriodicImages const & images,
                           std::string * reason) {
  auto const receiving = static_cast<std::size_t>(padded.receiving_nodes);
  // Edges come grouped by receiver, in node order (BuildModelGraph's breadth-first walk).
  std::vector<std::size_t> begin(receiving + 1, padded.receivers.size());
  for (std::size_t e = padded.receivers.size(); e-- > 0;) {
    auto const receiver = static_cast<std::size_t>(padded.receivers[e]);
    if (receiver >= receiving) {
      *reason = "an edge leads into a particle beyond the receptive field";
      return false;
    }
    begin[receiver] = e;
  }
  for (std::size_t node = receiving; node-- > 0;)
    begin[node] = std::min(begin[node], begin[node + 1]);
  std::vector<int> node_of_contributing(images.owner.size(), -1);
  for (std::size_t node = 0; node < padded.NumNodes(); ++node)
    if (padded.contributing[node]) node_of_contributing[padded.particle[node]] = static_cast<int>(node);

  // The sorted neighbour keys of a receiving node, images relative to its own.
  auto keys_of = [&](std::size_t node, std::vector<EdgeKey> * keys) {
    keys->clear();
    std::array<int, 3> const & base = images.image[padded.particle[node]];
    for (std::size_t e = begin[node]; e < begin[node + 1]; ++e) {
      if (static_cast<std::size_t>(padded.receivers[e]) != node) return false;
      int const q = padded.particle[padded.senders[e]];
      std::array<int, 3> const & n = images.image[q];
      keys->push_back({images.owner[q], {n[0] - base[0], n[1] - base[1], n[2] - base[2]}});
    }
    std::sort(keys->begin(), keys->end());
    return true;
  };
  std::vector<std::vector<EdgeKey>> owner_keys(padded.NumNodes());
  std::vector<EdgeKey> keys;
  for (std::size_t node = 0; node < receiving; ++node) {
    int const owner = images.owner[padded.particle[node]];
    int const owner_node = node_of_contributing[owner];
    if (owner_node < 0 || static_cast<std::size_t>(owner_node) >= receiving) {
      *reason = "a contributing particle is missing from the receptive field";
      return false;
    }
    auto & expected = owner_keys[owner_node];
    if (expected.empty() && !keys_of(owner_node, &expected)) {
      *reason = "the receptive field's edges are not grouped by receiver";
      return false;
    }
    if (padded.contributing[node]) continue;
    if (!keys_of(node, &keys) || keys != expected) {
      *reason = "padding particle " + std::to_string(padded.particle[node])
                + " does not have the neighbours of the contributing particle it images";
      return false;
    }
  }
  return true;
}

bool BuildFoldedGraph(ParticleArrays const & particles, double cutoff_angstrom, int num_layers,
                      NeighborSource const & neighbors_of, PeriodicImages const & images,
                      ModelGraph * graph, std::string * error) {
  for (auto * ints : {&graph->species, &graph->receivers, &graph->senders, &graph->layer_edges})
    ints->clear();
  graph->particle.clear();
  graph->positions.clear();
  graph->contributing.clear();
  graph->shifts.clear();
  graph->edge_source.clear();
  graph->folded = true;
  std::vector<std::int64_t> node_of(particles.count, -1);
  for (int p = 0; p < particles.count; ++p) {
    if (!particles.contributing[p]) continue;
    node_of[p] = static_cast<std::int64_t>(graph->particle.size());
    graph->particle.push_back(p);
    graph->species.push_back(particles.species_codes[p]);
    graph->contributing.push_back(1);
    for (int k = 0; k < 3; ++k) graph->positions.push_back(particles.coordinates[3 * p + k]);
  }
  double const cutoff_squared = cutoff_angstrom * cutoff_angstrom;
  for (int const p : graph->particle) {
    int count = 0;
    int const * neighbors = nullptr;
    if (!neighbors_of(p, &count, &neighbors)) {
      *error = "the simulator gave no neighbour list for particle " + std::to_string(p);
      return false;
    }
    Vec3 const x = PositionOf(particles, p);
    for (int n = 0; n < count; ++n) {
      int const q = neighbors[n];
      Vec3 const y = PositionOf(particles, q);
      Vec3 const delta = Minus(y, x);
      if (Dot(delta, delta) >= cutoff_squared) continue;
      int const owner = images.owner[q];
      // The shift from the owner's position to the image's: positions[j] + shift - positions[i]
      // is then the pair vector itself.
      Vec3 const shift = Minus(y, PositionOf(particles, owner));
      graph->receivers.push_back(node_of[p]);
      graph->senders.push_back(node_of[owner]);
      graph->edge_source.push_back(q);
      graph->shifts.insert(graph->shifts.end(), shift.begin(), shift.end());
    }
  }
  graph->layer_edges.assign(num_layers, static_cast<std::int64_t>(graph->receivers.size()));
  graph->receiving_nodes = static_cast<std::int64_t>(graph->particle.size());
  return true;
}

}  // namespace eipnn
