// Spiking culture on a multi-electrode array (SpikingGrid, shared/docs/seeds-lagani-fasthebb-
// spikinggrid.md §10): one 1 ms step of B independent samples of n leaky integrate-and-fire
// neurons Y, their one-to-one inhibitory relays Z (Z spikes one step after Y), and E = 60
// Poisson electrodes X, with trace-based STDP and per-neuron renormalisation.
//
// Layout. State and spikes are [B, n] (or [B, E]) row-major sections of two buffers (offsets
// below). Weights exist once per culture c < C; batch element b uses culture b / (B / C).
//   - electrodes → Y and Z → Y (sparse after pruning): ELL by postsynaptic neuron. Row i holds
//     `width` (presynaptic index, weight) pairs in ascending index order, padded with NONE.
//   - Y → Y (σ_E = 1.2 mm on a 3 x 5 mm culture: 95 % of pairs survive pruning): dense
//     by presynaptic neuron, W_E[c, pre, post], pruned synapses and self-connections holding −1
//     (E weights are clamped to ≥ 0, so the sign is the mask). The rows are split over four
//     bindings of at most `rows_per_chunk` rows each, to stay under per-binding size limits.
//     Each step reads only the rows of the neurons that spiked: a compacted, ordered spike list.
//
// One step t (slots: Y spikes ring of 3, t % 3 is now; X spikes ring of 2):
//   electrodes_step  sX(t) ~ Bernoulli(p_e) per electrode, xX = xX·d_trace, 1 on a spike
//   lif_step         I = W_in·sX(t−1) + W_E·sY(t−1) + W_I·sY(t−2)   (sZ(t−1) = sY(t−2))
//                    v = rest + (v − rest)·d_m; v += I unless refractory; refrac −= 1;
//                    spike if v ≥ thresh: v = reset, refrac = refrac_steps; v = max(v, lbound)
//                    xY = xY·d_trace, 1 on a spike; xZ likewise with sZ(t) = sY(t−1);
//                    counts += spike
//   compact_spikes   the ordered list of Y neurons that spiked at t (read by the next
//                    lif_step and by stdp_update)
//   stdp_update      (learning, B == C) on synapses whose pre or post neuron spiked at t:
//                    excitatory and input: w += A⁺·x_pre·s_post − A⁻·s_pre·x_post, w ≥ 0;
//                    inhibitory (signs flipped): w += A⁻·s_pre·x_post − A⁺·x_pre·s_post, w ≤ 0
// After a sample, `renormalise` scales each neuron's incoming weights of each connection to
// Σ|w| = its strength, and `reset_state` returns every neuron to rest before the next one.
//
// Bounds: every entry point guards b < B (or c < C), i < n, e < E; ELL columns < width; the
// launcher checks each buffer holds its sections.

struct SpikingParams {
    n: u32, batch: u32, cultures: u32, electrodes: u32,
    width_in: u32, width_inh: u32, rows_per_chunk: u32, t: u32,
    seed: u32, sample_base: u32, flags: u32, refrac_steps: u32,
    decay_m: f32, rest: f32, thresh: f32, reset: f32,
    decay_trace: f32, lbound: f32, a_plus: f32, a_minus: f32,
    norm_in: f32, norm_exc: f32, norm_inh: f32, _pad0: f32,
}

const NONE: u32 = 0xffffffffu;
// flags bit 0: clamp v at lbound (bio configs)
const FLAG_LBOUND: u32 = 1u;

@group(0) @binding(0) var<uniform> p: SpikingParams;
// v, refractory counters, xY, xZ, counts: [B, n] each; xX: [B, E]; p_e: [B, E] (spike
// probabilities per step).
@group(0) @binding(1) var<storage, read_write> state: array<f32>;
// sY ring [3, B, n], sX ring [2, B, E], spike lists [B, n], list lengths [B].
@group(0) @binding(2) var<storage, read_write> spikes: array<u32>;
// ELL indices: input rows [n, width_in], then inhibitory rows [n, width_inh].
@group(0) @binding(3) var<storage, read> ell_idx: array<u32>;
// ELL weights: input [C, n, width_in], then inhibitory [C, n, width_inh].
@group(0) @binding(4) var<storage, read_write> ell_w: array<f32>;
// W_E rows r = c·n + pre, chunk r / rows_per_chunk.
@group(0) @binding(5) var<storage, read_write> we0: array<f32>;
@group(0) @binding(6) var<storage, read_write> we1: array<f32>;
@group(0) @binding(7) var<storage, read_write> we2: array<f32>;
@group(0) @binding(8) var<storage, read_write> we3: array<f32>;

// Sections of `state`.
fn v_at(b: u32, i: u32) -> u32 { return b * p.n + i; }
fn refrac_at(b: u32, i: u32) -> u32 { return (p.batch + b) * p.n + i; }
fn xy_at(b: u32, i: u32) -> u32 { return (2u * p.batch + b) * p.n + i; }
fn xz_at(b: u32, i: u32) -> u32 { return (3u * p.batch + b) * p.n + i; }
fn count_at(b: u32, i: u32) -> u32 { return (4u * p.batch + b) * p.n + i; }
fn xx_at(b: u32, e: u32) -> u32 { return 5u * p.batch * p.n + b * p.electrodes + e; }
fn pe_at(b: u32, e: u32) -> u32 { return 5u * p.batch * p.n + (p.batch + b) * p.electrodes + e; }

// Sections of `spikes`; `back` steps before t (0, 1 or 2 for Y; 0 or 1 for X).
fn sy_at(back: u32, b: u32, i: u32) -> u32 {
    return (((p.t + 3u - back) % 3u) * p.batch + b) * p.n + i;
}
fn sx_at(back: u32, b: u32, e: u32) -> u32 {
    return 3u * p.batch * p.n + (((p.t + 2u - back) % 2u) * p.batch + b) * p.electrodes + e;
}
fn list_at(b: u32, k: u32) -> u32 {
    return 3u * p.batch * p.n + 2u * p.batch * p.electrodes + b * p.n + k;
}
fn list_len_at(b: u32) -> u32 {
    return 4u * p.batch * p.n + 2u * p.batch * p.electrodes + b;
}

fn culture_of(b: u32) -> u32 { return b / (p.batch / p.cultures); }

// W_E[c, pre, post].
fn we_get(c: u32, pre: u32, post: u32) -> f32 {
    let r = c * p.n + pre;
    let k = (r % p.rows_per_chunk) * p.n + post;
    switch (r / p.rows_per_chunk) {
        case 0u: { return we0[k]; }
        case 1u: { return we1[k]; }
        case 2u: { return we2[k]; }
        default: { return we3[k]; }
    }
}
fn we_set(c: u32, pre: u32, post: u32, w: f32) {
    let r = c * p.n + pre;
    let k = (r % p.rows_per_chunk) * p.n + post;
    switch (r / p.rows_per_chunk) {
        case 0u: { we0[k] = w; }
        case 1u: { we1[k] = w; }
        case 2u: { we2[k] = w; }
        default: { we3[k] = w; }
    }
}

fn in_w_at(c: u32, i: u32, j: u32) -> u32 { return (c * p.n + i) * p.width_in + j; }
fn inh_w_at(c: u32, i: u32, j: u32) -> u32 {
    return p.cultures * p.n * p.width_in + (c * p.n + i) * p.width_inh + j;
}
fn inh_idx_at(i: u32, j: u32) -> u32 { return p.n * p.width_in + i * p.width_inh + j; }

// A uniform draw in [0, 1) from (seed, sample, step, electrode): the PCG output function over
// a chained hash, so GPU and CPU reference draw identical spike trains.
fn pcg(v: u32) -> u32 {
    let state = v * 747796405u + 2891336453u;
    let word = ((state >> ((state >> 28u) + 4u)) ^ state) * 277803737u;
    return (word >> 22u) ^ word;
}
fn uniform01(sample: u32, step: u32, e: u32) -> f32 {
    let h = pcg(pcg(pcg(pcg(p.seed) ^ sample) ^ step) ^ e);
    return f32(h >> 8u) * (1.0 / 16777216.0);
}

fn flat(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * 64u + lid;
}

// Grid: B·E invocations (64 per workgroup).
@compute @workgroup_size(64, 1, 1)
fn electrodes_step(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_index) lid: u32) {
    let g = flat(wg, nwg, lid);
    if (g >= p.batch * p.electrodes) { return; }
    let b = g / p.electrodes;
    let e = g % p.electrodes;
    let fire = uniform01(p.sample_base + b, p.t, e) < state[pe_at(b, e)];
    spikes[sx_at(0u, b, e)] = select(0u, 1u, fire);
    state[xx_at(b, e)] = select(state[xx_at(b, e)] * p.decay_trace, 1.0, fire);
}

// The synaptic input of neuron i in batch element b from the spikes of steps t−1 and t−2.
// `dense_e` walks every presynaptic neuron (the naive baseline) instead of the spike list.
fn synaptic_input(b: u32, i: u32, dense_e: bool) -> f32 {
    let c = culture_of(b);
    var input = 0.0;
    for (var j = 0u; j < p.width_in; j++) {
        let e = ell_idx[i * p.width_in + j];
        if (e == NONE) { break; }
        input += ell_w[in_w_at(c, i, j)] * f32(spikes[sx_at(1u, b, e)]);
    }
    if (dense_e) {
        for (var pre = 0u; pre < p.n; pre++) {
            let w = we_get(c, pre, i);
            if (w > 0.0) { input += w * f32(spikes[sy_at(1u, b, pre)]); }
        }
    } else {
        // The list holds the spikes of t − 1 (compact_spikes ran after the last step).
        let len = spikes[list_len_at(b)];
        for (var k = 0u; k < len; k++) {
            let w = we_get(c, spikes[list_at(b, k)], i);
            if (w > 0.0) { input += w; }
        }
    }
    for (var j = 0u; j < p.width_inh; j++) {
        let pre = ell_idx[inh_idx_at(i, j)];
        if (pre == NONE) { break; }
        input += ell_w[inh_w_at(c, i, j)] * f32(spikes[sy_at(2u, b, pre)]);
    }
    return input;
}

fn lif(b: u32, i: u32, input: f32) {
    var v = p.rest + (state[v_at(b, i)] - p.rest) * p.decay_m;
    var refrac = state[refrac_at(b, i)];
    if (refrac <= 0.0) { v += input; }
    refrac -= 1.0;
    let fire = v >= p.thresh;
    if (fire) {
        v = p.reset;
        refrac = f32(p.refrac_steps);
    }
    if ((p.flags & FLAG_LBOUND) != 0u) { v = max(v, p.lbound); }
    state[v_at(b, i)] = v;
    state[refrac_at(b, i)] = refrac;
    spikes[sy_at(0u, b, i)] = select(0u, 1u, fire);
    state[xy_at(b, i)] = select(state[xy_at(b, i)] * p.decay_trace, 1.0, fire);
    let relay = spikes[sy_at(1u, b, i)] != 0u;
    state[xz_at(b, i)] = select(state[xz_at(b, i)] * p.decay_trace, 1.0, relay);
    state[count_at(b, i)] += select(0.0, 1.0, fire);
}

// Grid: B·n invocations (64 per workgroup).
@compute @workgroup_size(64, 1, 1)
fn lif_step(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let g = flat(wg, nwg, lid);
    if (g >= p.batch * p.n) { return; }
    let b = g / p.n;
    let i = g % p.n;
    lif(b, i, synaptic_input(b, i, false));
}

// The naive baseline: the same step with the excitatory input as a dense matrix-vector
// product over all n presynaptic neurons.
@compute @workgroup_size(64, 1, 1)
fn lif_step_dense(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let g = flat(wg, nwg, lid);
    if (g >= p.batch * p.n) { return; }
    let b = g / p.n;
    let i = g % p.n;
    lif(b, i, synaptic_input(b, i, true));
}

// Ordered compaction of sY(t) into the spike list of each batch element: one workgroup of
// 64 per b walks the n neurons in blocks of 64 with a workgroup prefix sum.
var<workgroup> scan: array<u32, 64>;

@compute @workgroup_size(64, 1, 1)
fn compact_spikes(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let b = wg.y * nwg.x + wg.x;
    // Uniform across the workgroup, so the barriers below stay in uniform control flow.
    if (b >= p.batch) { return; }
    var total = 0u;
    for (var base = 0u; base < p.n; base += 64u) {
        let i = base + lid;
        var fired = 0u;
        if (i < p.n) { fired = spikes[sy_at(0u, b, i)]; }
        scan[lid] = fired;
        workgroupBarrier();
        // Hillis–Steele inclusive scan over the block.
        for (var s = 1u; s < 64u; s <<= 1u) {
            var add = 0u;
            if (lid >= s) { add = scan[lid - s]; }
            workgroupBarrier();
            scan[lid] += add;
            workgroupBarrier();
        }
        if (fired != 0u) { spikes[list_at(b, total + scan[lid] - 1u)] = i; }
        total += scan[63];
        workgroupBarrier();
    }
    if (lid == 0u) { spikes[list_len_at(b)] = total; }
}

// Grid: C·n invocations; batch element b = c (learning runs one sample per culture).
@compute @workgroup_size(64, 1, 1)
fn stdp_update(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let g = flat(wg, nwg, lid);
    if (g >= p.cultures * p.n) { return; }
    let c = g / p.n;
    let i = g % p.n;
    let b = c;
    let post_fired = spikes[sy_at(0u, b, i)] != 0u;
    let s_post = select(0.0, 1.0, post_fired);
    let x_post = state[xy_at(b, i)];
    // Electrodes → Y.
    for (var j = 0u; j < p.width_in; j++) {
        let e = ell_idx[i * p.width_in + j];
        if (e == NONE) { break; }
        let s_pre = f32(spikes[sx_at(0u, b, e)]);
        if (s_pre == 0.0 && !post_fired) { continue; }
        let at = in_w_at(c, i, j);
        let dw = p.a_plus * state[xx_at(b, e)] * s_post - p.a_minus * s_pre * x_post;
        ell_w[at] = max(ell_w[at] + dw, 0.0);
    }
    // Z → Y, signs flipped, w ≤ 0.
    for (var j = 0u; j < p.width_inh; j++) {
        let pre = ell_idx[inh_idx_at(i, j)];
        if (pre == NONE) { break; }
        let s_pre = f32(spikes[sy_at(1u, b, pre)]);
        if (s_pre == 0.0 && !post_fired) { continue; }
        let at = inh_w_at(c, i, j);
        let dw = p.a_minus * s_pre * x_post - p.a_plus * state[xz_at(b, pre)] * s_post;
        ell_w[at] = min(ell_w[at] + dw, 0.0);
    }
    // Y → Y, column i of W_E.
    if (post_fired) {
        for (var pre = 0u; pre < p.n; pre++) {
            let w = we_get(c, pre, i);
            if (w < 0.0) { continue; }
            let s_pre = f32(spikes[sy_at(0u, b, pre)]);
            let dw = p.a_plus * state[xy_at(b, pre)] - p.a_minus * s_pre * x_post;
            we_set(c, pre, i, max(w + dw, 0.0));
        }
    } else {
        let len = spikes[list_len_at(b)];
        for (var k = 0u; k < len; k++) {
            let pre = spikes[list_at(b, k)];
            let w = we_get(c, pre, i);
            if (w < 0.0) { continue; }
            we_set(c, pre, i, max(w - p.a_minus * x_post, 0.0));
        }
    }
}

// Grid: C·n invocations. Σ|w| of neuron i's incoming weights of each connection scaled to that
// connection's strength (a neuron whose weights all vanished stays at zero).
@compute @workgroup_size(64, 1, 1)
fn renormalise(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let g = flat(wg, nwg, lid);
    if (g >= p.cultures * p.n) { return; }
    let c = g / p.n;
    let i = g % p.n;
    var sum_in = 0.0;
    for (var j = 0u; j < p.width_in; j++) { sum_in += abs(ell_w[in_w_at(c, i, j)]); }
    var sum_inh = 0.0;
    for (var j = 0u; j < p.width_inh; j++) { sum_inh += abs(ell_w[inh_w_at(c, i, j)]); }
    var sum_exc = 0.0;
    for (var pre = 0u; pre < p.n; pre++) { sum_exc += max(we_get(c, pre, i), 0.0); }
    if (sum_in > 0.0) {
        let s = p.norm_in / sum_in;
        for (var j = 0u; j < p.width_in; j++) { ell_w[in_w_at(c, i, j)] *= s; }
    }
    if (sum_inh > 0.0) {
        let s = p.norm_inh / sum_inh;
        for (var j = 0u; j < p.width_inh; j++) { ell_w[inh_w_at(c, i, j)] *= s; }
    }
    if (sum_exc > 0.0) {
        let s = p.norm_exc / sum_exc;
        for (var pre = 0u; pre < p.n; pre++) {
            let w = we_get(c, pre, i);
            if (w > 0.0) { we_set(c, pre, i, w * s); }
        }
    }
}

// Grid: B·n invocations. Every neuron at rest, traces, refractory counters, spike history and
// counts cleared; the invocation of neuron 0 also clears the electrodes' traces and spikes.
@compute @workgroup_size(64, 1, 1)
fn reset_state(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_index) lid: u32) {
    let g = flat(wg, nwg, lid);
    if (g >= p.batch * p.n) { return; }
    let b = g / p.n;
    let i = g % p.n;
    state[v_at(b, i)] = p.rest;
    state[refrac_at(b, i)] = 0.0;
    state[xy_at(b, i)] = 0.0;
    state[xz_at(b, i)] = 0.0;
    state[count_at(b, i)] = 0.0;
    for (var back = 0u; back < 3u; back++) { spikes[sy_at(back, b, i)] = 0u; }
    if (i == 0u) {
        for (var e = 0u; e < p.electrodes; e++) {
            state[xx_at(b, e)] = 0.0;
            spikes[sx_at(0u, b, e)] = 0u;
            spikes[sx_at(1u, b, e)] = 0u;
        }
        spikes[list_len_at(b)] = 0u;
    }
}
