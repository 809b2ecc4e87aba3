// The row-wise competition modes of `HebbParams.mode`, prepended (see src/kernels/mod.rs) to
// hebbian.wgsl, competition_subgroup.wgsl and projection_competition.wgsl, so the three
// competition kernels and their launcher (`kernels::hebbian::modes`, which a test compares
// with these values) name each mode one way. U is the row of projections, T the optional
// teacher (1 without one), out0 the activation Y and out1 the post-synaptic factor G.
const MODE_RELU: u32 = 0u;         // Y = relu(u), G = Y ⊙ T
const MODE_TANH: u32 = 1u;         // Y = tanh(u), G = Y ⊙ T
const MODE_KWTA: u32 = 2u;         // Y = [u ⊙ T ≥ k-th largest], G = Y ⊙ T
const MODE_SOFT_EXP: u32 = 3u;     // Y = exp(u/a) ⊙ T / Σ, G = Y ⊙ T
const MODE_SOFT_POW: u32 = 4u;     // Y = u^a ⊙ T / Σ, G = Y ⊙ T
const MODE_SOFTMAX: u32 = 5u;      // Y = G = softmax(a·u)
const MODE_SOFT_KROTOV: u32 = 6u;  // Y = G = −softmax(a·u), +softmax at the winner
const MODE_HARD: u32 = 7u;         // Y = G = onehot(argmax u)
const MODE_KROTOV: u32 = 8u;       // Y = G = +1 at the winner, −a at the k-th ranked unit
const MODE_TEACHER: u32 = 9u;      // Y = u, G = T
const MODE_LOGISTIC: u32 = 10u;    // Y = σ(u), G = Y ⊙ T
const MODE_IDENTITY: u32 = 11u;    // Y = u, G = Y ⊙ T
const MODE_RELU_ONLY: u32 = 12u;   // Y = G = relu(u)
const MODE_TRIANGLE: u32 = 13u;    // Y = G = relu(u − row mean)^a
