#include "receptive_field.hpp"

namespace eipnn {

namespace {

double SquaredDistance(double const * coordinates, int a, int b) {
  double sum = 0.0;
  for (int k = 0; k < 3; ++k) {
    double const delta = coordinates[3 * b + k] - coordinates[3 * a + k];
    sum += delta * delta;
  }
  return sum;
}

// Give `particle` a node in the graph (once) and return its node index.
std::int64_t NodeOf(int particle, ParticleArrays const & particles, std::vector<int> * node_of,
                    ModelGraph * graph) {
  int & node = (*node_of)[particle];
  if (node < 0) {
    node = static_cast<int>(graph->particle.size());
    graph->particle.push_back(particle);
    graph->species.push_back(particles.species_codes[particle]);
    graph->contributing.push_back(particles.contributing[particle] ? 1 : 0);
    for (int k = 0; k < 3; ++k) graph->positions.push_back(particles.coordinates[3 * particle + k]);
  }
  return node;
}

}  // namespace

bool BuildModelGraph(ParticleArrays const & particles, double cutoff_angstrom, int num_layers,
                     NeighborSource const & neighbors_of, ModelGraph * graph,
                     std::string * error) {
  // clear(), not a fresh graph: the vectors keep their capacity from one MD step to the next.
  for (auto * ints : {&graph->species, &graph->receivers, &graph->senders, &graph->layer_edges})
    ints->clear();
  graph->particle.clear();
  graph->positions.clear();
  graph->contributing.clear();
  graph->shifts.clear();
  graph->edge_source.clear();
  graph->folded = false;
  graph->receiving_nodes = 0;
  double const cutoff_squared = cutoff_angstrom * cutoff_angstrom;
  std::vector<int> node_of(particles.count, -1);
  std::vector<int> frontier;
  for (int p = 0; p < particles.count; ++p) {
    if (particles.contributing[p]) {
      NodeOf(p, particles, &node_of, graph);
      frontier.push_back(p);
    }
  }
  // edges_within[d]: how many edges have a receiver at most d edges away.
  std::vector<std::int64_t> edges_within;
  // Layer by layer: particles in `frontier` are `depth` edges away and need their edges.
  for (int depth = 0; depth < num_layers && !frontier.empty(); ++depth) {
    // Every node so far is at most `depth` edges away: it gets its edges in this pass or got
    // them before. (A walk that runs out of particles adds no nodes in its last pass.)
    graph->receiving_nodes = static_cast<std::int64_t>(graph->NumNodes());
    std::vector<int> next;
    for (int const p : frontier) {
      int count = 0;
      int const * neighbors = nullptr;
      if (!neighbors_of(p, &count, &neighbors)) {
        *error = "the simulator gave no neighbour list for particle " + std::to_string(p);
        return false;
      }
      std::int64_t const receiver = node_of[p];
      for (int n = 0; n < count; ++n) {
        int const q = neighbors[n];
        if (SquaredDistance(particles.coordinates, p, q) >= cutoff_squared) continue;
        bool const first_seen = node_of[q] < 0;
        std::int64_t const sender = NodeOf(q, particles, &node_of, graph);
        if (first_seen) next.push_back(q);
        graph->receivers.push_back(receiver);
        graph->senders.push_back(sender);
      }
    }
    frontier.swap(next);
    edges_within.push_back(static_cast<std::int64_t>(graph->receivers.size()));
  }
  // Receivers lie at most (layers - 1 - l) edges away for layer l; a search that ran out of
  // particles early (no padding) leaves every edge to the outer layers.
  auto const all_edges = static_cast<std::int64_t>(graph->receivers.size());
  for (int layer = 0; layer < num_layers; ++layer) {
    std::size_t const depth = static_cast<std::size_t>(num_layers - 1 - layer);
    graph->layer_edges.push_back(depth < edges_within.size() ? edges_within[depth] : all_edges);
  }
  return true;
}

}  // namespace eipnn
