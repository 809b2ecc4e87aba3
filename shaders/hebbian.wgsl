// The non-GEMM parts of the Hebbian presets (shared/golden/PRESETS.md): similarities,
// row-wise competition, column-broadcast maps and the small C x D / C x C maps around the
// update GEMMs. Row matrices are N x C (row n = sample or position, column i = neuron);
// weight-shaped matrices are C x D. guard(v) = v if v != 0 else 1.
//
// Bounds: every entry point guards its index against n·c, c·d, c·c, n or c from the params,
// and the launchers check each bound tensor holds that extent.

// HebbParams, the competition modes, their formulas and guard / pow_nonneg come from
// competition_modes.wgsl, prepended to this file.

@group(0) @binding(0) var<uniform> p: HebbParams;
@group(0) @binding(1) var<storage, read> in0: array<f32>;
@group(0) @binding(2) var<storage, read> in1: array<f32>;
@group(0) @binding(3) var<storage, read> in2: array<f32>;
@group(0) @binding(4) var<storage, read_write> out0: array<f32>;
@group(0) @binding(5) var<storage, read_write> out1: array<f32>;

// Elements each invocation of a streaming pass handles (signed_pow), 256 apart, so that a
// workgroup covers one contiguous block and neighbouring invocations touch neighbouring
// elements; the launcher sets it (`hebbian::ELEMENTS_PER_INVOCATION`).
override ELEMENTS_PER_INVOCATION: u32 = 1u;

fn linear_index(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * 256u + lid;
}

// Raised cosine squared (§1.1) and the vector projection, over N x C:
//   in0 = X·Wᵀ dots, in1 = Σ_d x_nd² (N), in2 = Σ_d w_id² (C)
//   out0 = ((dots / (guard(‖w_i‖)·guard(‖x_n‖)) + 1) / 2)²
//   out1 = dots / guard(‖w_i‖), through relu when flags bit 0 is set.
@compute @workgroup_size(256, 1, 1)
fn raised_cosine2(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let e = linear_index(wg, nwg, lid);
    if (e >= p.n * p.c) { return; }
    let row = e / p.c;
    let i = e % p.c;
    let wn = guard(sqrt(in2[i]));
    let cosine = in0[e] / (wn * guard(sqrt(in1[row])));
    let h = (cosine + 1.0) * 0.5;
    out0[e] = h * h;
    let proj = in0[e] / wn;
    out1[e] = select(proj, max(proj, 0.0), (p.flags & 1u) != 0u);
}

// Row-wise competition, one invocation per row n of in0 = U (N x C); in1 = teacher T (N x C,
// used when flags bit 0 is set). out0 = the preset's activation / competition output,
// out1 = the post-synaptic factor G that enters the update:
//   mode 0 relu:        out0 = relu(u),  out1 = out0 ⊙ T
//   mode 1 tanh:        out0 = tanh(u),  out1 = out0 ⊙ T
//   mode 2 k-WTA:       v = u ⊙ T; out0 = [v ≥ k-th largest of v]; out1 = out0 ⊙ T
//   mode 3 exp soft-WTA (unstabilised, as the authors): E = exp(u / a) ⊙ T,
//                       out0 = E / guard(Σ E), out1 = out0 ⊙ T
//   mode 4 power soft-WTA: E = u^a ⊙ T, out0 = E / guard(Σ E), out1 = out0 ⊙ T
//   mode 5 softmax:     out0 = out1 = softmax(a·u) (stabilised by the row max)
//   mode 6 SoftKrotov:  P = softmax(a·u); out0 = out1 = −P, +P at the first argmax of u
//   mode 7 hard WTA:    out0 = out1 = onehot(first argmax of u)
//   mode 8 Krotov:      out0 = out1 = +1 at the first argmax, −a at the k-th ranked unit
//   mode 9 teacher:     out0 = u, out1 = T (Lagani's supervised final layer)
//   mode 10 logistic:   out0 = 1 / (1 + exp(−u));  mode 11 identity: out0 = u;
//                       out1 = out0 ⊙ T for both
//   mode 12 relu only:  out0 = out1 = relu(u)
//   mode 13 triangle:   out0 = out1 = relu(u − mean_i u)^a (SoftHebb's activation; the mean
//                       is over the row's C channels, i.e. per position of a conv layer)
fn teacher(base: u32, i: u32) -> f32 {
    return select(1.0, in1[base + i], (p.flags & 1u) != 0u);
}

// Value and first index of rank r (1-based, largest first, duplicates counted, ties ordered
// by index) among the row's values (u, or u ⊙ T): r passes, each taking the next entry in the
// order (value descending, index ascending). O(r·C) per row.
fn row_value(base: u32, i: u32, with_teacher: bool) -> f32 {
    var v = in0[base + i];
    if (with_teacher) { v *= teacher(base, i); }
    return v;
}

struct Ranked { value: f32, index: u32, }

fn kth_largest(base: u32, r: u32, with_teacher: bool) -> Ranked {
    var prev_value = 0.0;
    var prev_index = 0u;
    for (var pass_ = 0u; pass_ < r; pass_++) {
        var found = false;
        var best_value = 0.0;
        var best_index = 0u;
        for (var i = 0u; i < p.c; i++) {
            let v = row_value(base, i, with_teacher);
            // Only entries after the previous one in the order are candidates.
            let after = pass_ == 0u || ranks_after(v, i, prev_value, prev_index);
            if (after && (!found || v > best_value)) {
                best_value = v;
                best_index = i;
                found = true;
            }
        }
        prev_value = best_value;
        prev_index = best_index;
    }
    return Ranked(prev_value, prev_index);
}

@compute @workgroup_size(64, 1, 1)
fn competition(@builtin(global_invocation_id) gid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = gid.y * nwg.x * 64u + gid.x;
    if (row >= p.n) { return; }
    let base = row * p.c;
    switch (p.mode) {
        case MODE_KWTA: {
            let kth = kth_largest(base, p.k, true).value;
            for (var i = 0u; i < p.c; i++) {
                let t = teacher(base, i);
                let y = kwta_y(in0[base + i] * t, kth);
                out0[base + i] = y;
                out1[base + i] = y * t;
            }
        }
        case MODE_SOFT_EXP, MODE_SOFT_POW: {
            var total = 0.0;
            for (var i = 0u; i < p.c; i++) {
                let e = soft_share(p.mode, in0[base + i], p.a) * teacher(base, i);
                out0[base + i] = e;
                total += e;
            }
            let g = guard(total);
            for (var i = 0u; i < p.c; i++) {
                let y = out0[base + i] / g;
                out0[base + i] = y;
                out1[base + i] = y * teacher(base, i);
            }
        }
        case MODE_SOFTMAX, MODE_SOFT_KROTOV: {
            // The first argmax of u, and the shift max_i a·u_i.
            var top = in0[base];
            var winner = 0u;
            var shift = p.a * top;
            for (var i = 1u; i < p.c; i++) {
                let u = in0[base + i];
                if (u > top) { top = u; winner = i; }
                shift = max(shift, p.a * u);
            }
            var total = 0.0;
            for (var i = 0u; i < p.c; i++) {
                let e = softmax_exp(in0[base + i], p.a, shift);
                out0[base + i] = e;
                total += e;
            }
            for (var i = 0u; i < p.c; i++) {
                let y = softmax_y(p.mode, out0[base + i] / total, i == winner);
                out0[base + i] = y;
                out1[base + i] = y;
            }
        }
        case MODE_HARD, MODE_KROTOV: {
            let winner = kth_largest(base, 1u, false).index;
            var kth = p.c;
            if (p.mode == MODE_KROTOV) { kth = kth_largest(base, p.k, false).index; }
            for (var i = 0u; i < p.c; i++) {
                let y = hard_y(p.mode, i == winner, i == kth, p.a);
                out0[base + i] = y;
                out1[base + i] = y;
            }
        }
        case MODE_TRIANGLE: {
            var mean = 0.0;
            for (var i = 0u; i < p.c; i++) { mean += in0[base + i]; }
            mean /= f32(p.c);
            for (var i = 0u; i < p.c; i++) {
                let y = triangle_y(in0[base + i], mean, p.a);
                out0[base + i] = y;
                out1[base + i] = y;
            }
        }
        default: {
            // The pointwise modes.
            for (var i = 0u; i < p.c; i++) {
                let y = pointwise_y(p.mode, in0[base + i]);
                out0[base + i] = y;
                out1[base + i] = pointwise_g(p.mode, y, teacher(base, i));
            }
        }
    }
}

// The activations' backward pass (fine-tuning) over N x C rows: in0 = u (the pre-activations),
// in1 = dY = ∂L/∂Y, out0 = dU = ∂L/∂u; p.a is the power of relu^a (mode relu-only) and of the
// triangle.
//   pointwise modes: dU = dY ⊙ Y'(u)
//   triangle: Y_j = relu(v_j)^a with v_j = u_j − mean_k u_k, so with g_j = dY_j·a·relu(v_j)^(a−1),
//             dU_j = g_j − mean_k g_k (∂v_j/∂u_i = δ_ij − 1/C)
@compute @workgroup_size(64, 1, 1)
fn activation_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                       @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = gid.y * nwg.x * 64u + gid.x;
    if (row >= p.n) { return; }
    let base = row * p.c;
    if (p.mode == MODE_TRIANGLE) {
        var mean = 0.0;
        for (var i = 0u; i < p.c; i++) { mean += in0[base + i]; }
        mean /= f32(p.c);
        var mean_g = 0.0;
        for (var i = 0u; i < p.c; i++) {
            let g = in1[base + i] * relu_pow_dy(in0[base + i] - mean, p.a);
            out0[base + i] = g;
            mean_g += g;
        }
        mean_g /= f32(p.c);
        for (var i = 0u; i < p.c; i++) { out0[base + i] -= mean_g; }
        return;
    }
    for (var i = 0u; i < p.c; i++) {
        out0[base + i] = in1[base + i] * pointwise_dy(p.mode, in0[base + i], p.a);
    }
}

// The backward pass of the unit-norm forward weights W̃_i = w_i / guard(‖w_i‖) (Lagani's WTA
// vector projection) over C x D: in0 = W, in1 = G̃ = the gradient with respect to W̃,
// out0 = the gradient with respect to W:
//   G_i = (G̃_i − W̃_i · (W̃_i · G̃_i)) / guard(‖w_i‖)
// (the Jacobian of w/‖w‖ is (I − w̃w̃ᵀ)/‖w‖, symmetric). One invocation per row.
@compute @workgroup_size(64, 1, 1)
fn unit_rows_backward(@builtin(global_invocation_id) gid: vec3<u32>,
                      @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = gid.y * nwg.x * 64u + gid.x;
    if (row >= p.c) { return; }
    let base = row * p.d;
    var sumsq = 0.0;
    for (var j = 0u; j < p.d; j++) { sumsq += in0[base + j] * in0[base + j]; }
    let norm = guard(sqrt(sumsq));
    var dot = 0.0;
    for (var j = 0u; j < p.d; j++) { dot += in0[base + j] / norm * in1[base + j]; }
    for (var j = 0u; j < p.d; j++) {
        out0[base + j] = (in1[base + j] - in0[base + j] / norm * dot) / norm;
    }
}

// Weight-shaped row scaling over C x D: out0[i, d] = s · f(in1[i]) · in0[i, d], with
//   mode 0: f(v) = v,   mode 1: f(v) = 1 / guard(v),   mode 2: f(v) = 1 / guard(sqrt(v)).
@compute @workgroup_size(256, 1, 1)
fn scale_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let e = linear_index(wg, nwg, lid);
    if (e >= p.c * p.d) { return; }
    let v = in1[e / p.d];
    var f = v;
    if (p.mode == 1u) { f = 1.0 / guard(v); }
    if (p.mode == 2u) { f = 1.0 / guard(sqrt(v)); }
    out0[e] = p.s * f * in0[e];
}

// The Lagani / hebbdemo WTA reduction weights over N x C: out0 = g ⊙ |g|.
@compute @workgroup_size(256, 1, 1)
fn square_signed(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let e = linear_index(wg, nwg, lid);
    if (e >= p.n * p.c) { return; }
    out0[e] = in0[e] * abs(in0[e]);
}

// Lower triangle with the diagonal, scaled, of a C x C matrix: out0 = s · (in0 ⊙ L).
@compute @workgroup_size(256, 1, 1)
fn tril_scale(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let e = linear_index(wg, nwg, lid);
    if (e >= p.c * p.c) { return; }
    out0[e] = select(0.0, p.s * in0[e], e % p.c <= e / p.c);
}

// Global-max normalisation of n elements: out0 = in0 / m with m from in1[0]:
//   mode 0: m = in1[0] + a (SoftHebb, a = 1e-30),  mode 1: m = max(in1[0], a) (Krotov).
@compute @workgroup_size(256, 1, 1)
fn divide_by_max(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                 @builtin(local_invocation_index) lid: u32) {
    let e = linear_index(wg, nwg, lid);
    if (e >= p.n) { return; }
    let m = select(in1[0] + p.a, max(in1[0], p.a), p.mode == 1u);
    out0[e] = in0[e] / m;
}

// Krotov's currents weights over n elements: out0 = sign(w)·|w|^a.
@compute @workgroup_size(256, 1, 1)
fn signed_pow(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_index) lid: u32) {
    let block = (wg.y * nwg.x + wg.x) * 256u * ELEMENTS_PER_INVOCATION;
    for (var k = 0u; k < ELEMENTS_PER_INVOCATION; k++) {
        let e = block + k * 256u + lid;
        if (e >= p.n) { return; }
        let w = in0[e];
        // Exponents 1 and 2 (Krotov's p = 2 and 3) exactly: pow's exp2(a·log2 v) is neither
        // exact nor cheap.
        var m = abs(w);
        if (p.a == 2.0) {
            m = m * m;
        } else if (p.a != 1.0) {
            m = pow_nonneg(m, p.a);
        }
        out0[e] = sign(w) * m;
    }
}

// Fine-tuning's gradient through those weights, over n elements: out0 = in1·a·|w|^(a − 1), with
// w = in0 and in1 = ∂L/∂W̃ (a ≥ 1, Krotov's p ≥ 2; the launcher refuses below: the factor is
// unbounded at w = 0). At w = 0 the factor is 1 for a = 1 and 0 above.
@compute @workgroup_size(256, 1, 1)
fn signed_pow_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                       @builtin(local_invocation_index) lid: u32) {
    let block = (wg.y * nwg.x + wg.x) * 256u * ELEMENTS_PER_INVOCATION;
    for (var k = 0u; k < ELEMENTS_PER_INVOCATION; k++) {
        let e = block + k * 256u + lid;
        if (e >= p.n) { return; }
        let m = abs(in0[e]);
        // Exponents 1 and 2 exactly, as signed_pow.
        var f = 1.0;
        if (p.a == 2.0) {
            f = 2.0 * m;
        } else if (p.a != 1.0) {
            f = p.a * pow_nonneg(m, p.a - 1.0);
        }
        out0[e] = in1[e] * f;
    }
}

// Variance adaptation statistics (§1.1), one invocation per column i of S = in0 (N x C):
// μ = mean, σ² = unbiased variance (two passes); the running mean out0 and variance out1
// (length C) become (1 − a)·old + a·new.
@compute @workgroup_size(64, 1, 1)
fn va_stats(@builtin(global_invocation_id) gid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.y * nwg.x * 64u + gid.x;
    if (i >= p.c) { return; }
    var sum = 0.0;
    for (var r = 0u; r < p.n; r++) { sum += in0[r * p.c + i]; }
    let mu = sum / f32(p.n);
    var sq = 0.0;
    for (var r = 0u; r < p.n; r++) {
        let t = in0[r * p.c + i] - mu;
        sq += t * t;
    }
    let var_new = sq / f32(p.n - 1u);
    out0[i] = (1.0 - p.a) * out0[i] + p.a * mu;
    out1[i] = (1.0 - p.a) * out1[i] + p.a * var_new;
}

// Variance adaptation (§1.1) over N x C: out0 = tanh((s − rm)/sd + rm)·sd, sd = sqrt(rv + e),
// with rm = in1 and rv = in2 (length C).
@compute @workgroup_size(256, 1, 1)
fn va_apply(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let e = linear_index(wg, nwg, lid);
    if (e >= p.n * p.c) { return; }
    let i = e % p.c;
    let sd = sqrt(in2[i] + p.e);
    out0[e] = tanh((in0[e] - in1[i]) / sd + in1[i]) * sd;
}

// BCM (§4) over N x C: out0 = y ⊙ (y − θ_i) / (θ_i + e), y = in0, θ = in1 · s (in1 holds
// Σ_b y², s = 1/B).
@compute @workgroup_size(256, 1, 1)
fn bcm_phi(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let e = linear_index(wg, nwg, lid);
    if (e >= p.n * p.c) { return; }
    let theta = in1[e % p.c] * p.s;
    let y = in0[e];
    out0[e] = y * (y - theta) / (theta + p.e);
}

// ICA-NRM (§1.9), one invocation per neuron i: out0_i = (P_i · w_i)·w_i − P_i with
// P = in0 and W = in1 (C x D).
@compute @workgroup_size(64, 1, 1)
fn ica_nrm_update(@builtin(global_invocation_id) gid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.y * nwg.x * 64u + gid.x;
    if (i >= p.c) { return; }
    var dot = 0.0;
    for (var d = 0u; d < p.d; d++) { dot += in0[i * p.d + d] * in1[i * p.d + d]; }
    for (var d = 0u; d < p.d; d++) {
        out0[i * p.d + d] = dot * in1[i * p.d + d] - in0[i * p.d + d];
    }
}

// Row-broadcast bias over N x C: out0 = in0 + in1[i].
@compute @workgroup_size(256, 1, 1)
fn add_bias(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let e = linear_index(wg, nwg, lid);
    if (e >= p.n * p.c) { return; }
    out0[e] = in0[e] + in1[e % p.c];
}

// SoftHebb's raw bias update (§3.2), length C: out0_i = (in0_i − N·e^{a·b_i}) / e^{a·b_i},
// in0 = Σ_n Y_ni, in1 = b.
@compute @workgroup_size(64, 1, 1)
fn softhebb_bias_raw(@builtin(global_invocation_id) gid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.y * nwg.x * 64u + gid.x;
    if (i >= p.c) { return; }
    let e = exp(p.a * in1[i]);
    out0[i] = (in0[i] - f32(p.n) * e) / e;
}
