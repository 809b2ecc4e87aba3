// The row-wise competition, written once for its three kernels: hebbian.wgsl's `competition`
// (one invocation per row), competition_subgroup.wgsl (one subgroup per row) and
// projection_competition.wgsl (fused with U = X·Wᵀ). This library file is prepended to each
// (src/kernels/mod.rs, `SHADER_LIBRARIES`). It holds their parameter struct, the mode numbers
// (`kernels::hebbian::modes` in Rust; a test compares them) and every per-entry formula; the
// kernels differ only in how they walk a row and reduce it (max, argmax, Σ, rank k).
//
// Notation per row: u the projections (C entries), T the optional teacher (1 without one),
// Y the activation (out0) and G the post-synaptic factor (out1).

struct HebbParams {
    n: u32, c: u32, d: u32, mode: u32,
    k: u32, flags: u32, _pad0: u32, _pad1: u32,
    a: f32, b: f32, e: f32, s: f32,
}

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

// guard(v) = v if v ≠ 0 else 1: the divisor of a normalisation whose total may vanish.
fn guard(v: f32) -> f32 { return select(v, 1.0, v == 0.0); }

// v^a for v ≥ 0 and a > 0, with 0^a = 0 spelled out (WGSL leaves pow(0, a) to exp2(a·log2 0)).
fn pow_nonneg(v: f32, a: f32) -> f32 { return select(pow(v, a), 0.0, v <= 0.0); }

// The modes whose Y is a function of u alone (no row reduction).
fn mode_is_pointwise(mode: u32) -> bool {
    return mode == MODE_RELU || mode == MODE_TANH || mode == MODE_LOGISTIC
        || mode == MODE_IDENTITY || mode == MODE_RELU_ONLY || mode == MODE_TEACHER;
}

// Y of a pointwise mode.
fn pointwise_y(mode: u32, u: f32) -> f32 {
    switch (mode) {
        case MODE_RELU, MODE_RELU_ONLY: { return max(u, 0.0); }
        case MODE_TANH: { return tanh(u); }
        case MODE_LOGISTIC: { return 1.0 / (1.0 + exp(-u)); }
        default: { return u; }
    }
}

// G of a pointwise mode from its Y and the teacher t: Y ⊙ T, except relu-only (Y) and
// teacher (T).
fn pointwise_g(mode: u32, y: f32, t: f32) -> f32 {
    switch (mode) {
        case MODE_RELU_ONLY: { return y; }
        case MODE_TEACHER: { return t; }
        default: { return y * t; }
    }
}

// k-WTA: Y = 1 where the entry u·t reaches the row's k-th largest value of u ⊙ T.
fn kwta_y(ut: f32, kth_value: f32) -> f32 { return select(0.0, 1.0, ut >= kth_value); }

// The unnormalised share of soft-WTA (before ⊙ T and ÷ Σ): exp(u/a), or u^a.
fn soft_share(mode: u32, u: f32, a: f32) -> f32 {
    return select(pow_nonneg(u, a), exp(u / a), mode == MODE_SOFT_EXP);
}

// softmax(a·u) is stabilised by shift = max over the row of a·u (a·max u for a > 0, a·min u
// otherwise); the exponential each entry contributes to the row's Σ:
fn softmax_exp(u: f32, a: f32, shift: f32) -> f32 { return exp(a * u - shift); }

// Y = G of softmax (q = the entry's exponential / Σ) and of SoftKrotov (−q, +q at the winner).
fn softmax_y(mode: u32, q: f32, is_winner: bool) -> f32 {
    return select(q, select(-q, q, is_winner), mode == MODE_SOFT_KROTOV);
}

// Y = G of hard WTA (1 at the winner) and Krotov (1 at the winner, −a at the k-th ranked unit).
fn hard_y(mode: u32, is_winner: bool, is_kth: bool, a: f32) -> f32 {
    return select(select(0.0, 1.0, is_winner), -a, mode == MODE_KROTOV && is_kth);
}

// Y = G of SoftHebb's triangle: relu(u − mean)^a, the mean over the row's C channels.
fn triangle_y(u: f32, mean: f32, a: f32) -> f32 { return pow_nonneg(u - mean, a); }

// The backward pass of the activations a network applies (fine-tuning): dY/du.
// relu^a (relu-only mode; a = 1 is relu) and the triangle's relu(v)^a at v = u − mean:
// a·v^(a−1) for v > 0, else 0 (PyTorch's relu sends no gradient through v ≤ 0, where
// v^(a−1) may be infinite).
fn relu_pow_dy(v: f32, a: f32) -> f32 { return select(a * pow(max(v, 0.0), a - 1.0), 0.0, v <= 0.0); }

// dY/du of a pointwise mode: tanh 1 − Y², logistic Y(1 − Y), identity 1.
fn pointwise_dy(mode: u32, u: f32, a: f32) -> f32 {
    switch (mode) {
        case MODE_RELU_ONLY: { return relu_pow_dy(u, a); }
        case MODE_TANH: { let y = tanh(u); return 1.0 - y * y; }
        case MODE_LOGISTIC: { let y = 1.0 / (1.0 + exp(-u)); return y * (1.0 - y); }
        default: { return 1.0; }
    }
}

// The rank order of every ranking mode: larger value first, then smaller index (so among
// equal values the first index wins and duplicates count toward k). True when entry (v, i)
// comes after (pv, pi), the previous entry taken.
fn ranks_after(v: f32, i: u32, pv: f32, pi: u32) -> bool {
    return v < pv || (v == pv && i > pi);
}
