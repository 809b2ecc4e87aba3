// Batch normalisation over NCHW x (B, C, H, W), per channel c:
//   training: μ_c, σ²_c = mean and biased variance over (B, H, W); the running statistics
//             become (1 − m)·old + m·new, with the unbiased variance (PyTorch's BatchNorm);
//   eval:     μ_c, σ²_c = the running statistics;
//   x̂ = (x − μ_c) / s_c with s_c = sqrt(σ²_c + ε);
//   y = f_c · x̂, or with affine parameters (flags bit 3; `affine` = γ (C) then β (C), PyTorch's
//   affine=True) y = f_c · (γ_c · x̂ + β_c); f_c = 1, or for Lagani's variance-preserving
//   "modified BN" f_c = sqrt((running_var_c + ε) / (mean_k running_var_k + ε)), which his code
//   applies to the output of an ordinary (affine) BN.
// bn_stats writes μ and σ² of this pass to `stats` (2·C: means, then variances).
// The backward pass (fine-tuning), from dy = ∂L/∂y and the forward's `stats`; f_c is a function
// of a buffer and carries no gradient (PyTorch):
//   bn_backward_stats:  grad_stats = (mean(dy), mean(dy·x̂)) per channel over (B, H, W) when
//                       training, zeros in eval (the statistics are then constants);
//   bn_backward_apply:  dx = f_c·γ_c / s_c · (dy − mean(dy) − x̂ · mean(dy·x̂)) (γ_c = 1 without
//                       affine parameters);
//   bn_backward_affine: grad_affine = (∂L/∂γ, ∂L/∂β) = f_c · (Σ dy·x̂, Σ dy) over (B, H, W).
// Chunked walks (flags bit 4), where one invocation may not walk a channel's B·H·W values (a
// driver's loop budget): the channel's values, in (b, i) order, split into `chunks` runs of
// `chunk`; bn_chunk_moments writes each run's (mean, Σ(x − run mean)²) and bn_chunk_dy_sums its
// (Σ dy, Σ dy·x̂) to `partials` (C, chunks, 2), and the per-channel entries combine them: the
// moments by Chan et al.'s pairwise update, n = n_a + n_b, δ = mean_b − mean_a,
// mean = mean_a + δ·n_b/n, M2 = M2_a + M2_b + δ²·n_a·n_b/n; the sums by adding.
// Bounds: channels c < C, elements e < B·C·H·W; the launcher checks every extent.

struct NormParams {
    batch: u32, channels: u32, plane: u32, flags: u32,
    momentum: f32, eps: f32, chunks: u32, chunk: u32,
}

@group(0) @binding(0) var<uniform> p: NormParams;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> running_mean: array<f32>;
@group(0) @binding(3) var<storage, read_write> running_var: array<f32>;
@group(0) @binding(4) var<storage, read_write> stats: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
@group(0) @binding(6) var<storage, read> dy: array<f32>;
@group(0) @binding(7) var<storage, read_write> grad_stats: array<f32>;
@group(0) @binding(8) var<storage, read_write> dx: array<f32>;
@group(0) @binding(9) var<storage, read> affine: array<f32>;
@group(0) @binding(10) var<storage, read_write> grad_affine: array<f32>;
@group(0) @binding(11) var<storage, read_write> partials: array<f32>;

var<workgroup> partial: array<f32, 256>;

// mean_k running_var[k] for the modified BN, reduced by a workgroup's 256 invocations together
// (each loads C/256 values, then a tree sum), so that each element's factor costs O(1) rather
// than a loop over all C channels (bn5 of Lagani's model_6l has C = 4,096). Returns 0 without
// the modified BN. Call from uniform control flow, before any bounds check: it holds barriers.
fn workgroup_mean_running_var(lid: u32) -> f32 {
    if ((p.flags & 2u) == 0u) { return 0.0; }
    var sum = 0.0;
    for (var k = lid; k < p.channels; k += 256u) { sum += running_var[k]; }
    partial[lid] = sum;
    workgroupBarrier();
    for (var stride = 128u; stride > 0u; stride >>= 1u) {
        if (lid < stride) { partial[lid] += partial[lid + stride]; }
        workgroupBarrier();
    }
    return partial[0] / f32(p.channels);
}

// f_c of the modified BN (flags bit 1) given mean_k running_var[k], else 1.
fn modified_factor(c: u32, mean_var: f32) -> f32 {
    if ((p.flags & 2u) == 0u) { return 1.0; }
    return sqrt((running_var[c] + p.eps) / (mean_var + p.eps));
}

// γ_c with affine parameters (flags bit 3), else 1.
fn scale_of(c: u32) -> f32 {
    if ((p.flags & 8u) == 0u) { return 1.0; }
    return affine[c];
}

// Flags bit 4: the statistics walk in chunks (`partials`).
fn chunked() -> bool { return (p.flags & 16u) != 0u; }

// A walk over channel c's values in (b, i) order: `e` indexes x (B, C, H, W), `i` is the
// position in the plane; one division at the start, none per step.
struct Walk { e: u32, i: u32, }

fn walk_from(c: u32, j: u32) -> Walk {
    let i = j % p.plane;
    return Walk(((j / p.plane) * p.channels + c) * p.plane + i, i);
}

fn walk_next(w: Walk) -> Walk {
    if (w.i + 1u < p.plane) { return Walk(w.e + 1u, w.i + 1u); }
    return Walk(w.e + 1u + (p.channels - 1u) * p.plane, 0u);
}

// The values [lo, hi) of channel c that chunk t = c·chunks + k walks.
fn chunk_range(t: u32) -> vec2<u32> {
    let lo = (t % p.chunks) * p.chunk;
    return vec2<u32>(lo, min(lo + p.chunk, p.batch * p.plane));
}

// (Σ dy, Σ dy·x̂) of channel c over its values [lo, hi), x̂ from this pass's `stats`.
fn dy_sums(c: u32, lo: u32, hi: u32) -> vec2<f32> {
    let mu = stats[c];
    let s = sqrt(stats[p.channels + c] + p.eps);
    var sum_dy = 0.0;
    var sum_dy_xhat = 0.0;
    var w = walk_from(c, lo);
    for (var j = lo; j < hi; j++) {
        sum_dy += dy[w.e];
        sum_dy_xhat += dy[w.e] * (x[w.e] - mu) / s;
        w = walk_next(w);
    }
    return vec2<f32>(sum_dy, sum_dy_xhat);
}

// (Σ dy, Σ dy·x̂) of channel c over (B, H, W): one walk, or the chunks' sums.
fn channel_dy_sums(c: u32) -> vec2<f32> {
    if (!chunked()) { return dy_sums(c, 0u, p.batch * p.plane); }
    var sums = vec2<f32>(0.0, 0.0);
    for (var k = 0u; k < p.chunks; k++) {
        let t = c * p.chunks + k;
        sums += vec2<f32>(partials[2u * t], partials[2u * t + 1u]);
    }
    return sums;
}

// (mean, Σ(x − mean)²) of channel c's values [lo, hi), two passes.
fn moments(c: u32, lo: u32, hi: u32) -> vec2<f32> {
    var sum = 0.0;
    var w = walk_from(c, lo);
    for (var j = lo; j < hi; j++) {
        sum += x[w.e];
        w = walk_next(w);
    }
    let mu = sum / f32(hi - lo);
    var sq = 0.0;
    w = walk_from(c, lo);
    for (var j = lo; j < hi; j++) {
        let t = x[w.e] - mu;
        sq += t * t;
        w = walk_next(w);
    }
    return vec2<f32>(mu, sq);
}

// One invocation per chunk t = c·chunks + k (flags bit 4).
@compute @workgroup_size(64, 1, 1)
fn bn_chunk_moments(@builtin(global_invocation_id) gid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = gid.y * nwg.x * 64u + gid.x;
    if (t >= p.channels * p.chunks) { return; }
    let r = chunk_range(t);
    let m = moments(t / p.chunks, r.x, r.y);
    partials[2u * t] = m.x;
    partials[2u * t + 1u] = m.y;
}

@compute @workgroup_size(64, 1, 1)
fn bn_chunk_dy_sums(@builtin(global_invocation_id) gid: vec3<u32>,
                    @builtin(num_workgroups) nwg: vec3<u32>) {
    let t = gid.y * nwg.x * 64u + gid.x;
    if (t >= p.channels * p.chunks) { return; }
    let r = chunk_range(t);
    let sums = dy_sums(t / p.chunks, r.x, r.y);
    partials[2u * t] = sums.x;
    partials[2u * t + 1u] = sums.y;
}

// (mean, Σ(x − mean)²) of channel c over (B, H, W): one walk, or the chunks' moments combined.
fn channel_moments(c: u32) -> vec2<f32> {
    if (!chunked()) { return moments(c, 0u, p.batch * p.plane); }
    var n = 0.0;
    var mu = 0.0;
    var sq = 0.0;
    for (var k = 0u; k < p.chunks; k++) {
        let t = c * p.chunks + k;
        let r = chunk_range(t);
        let nb = f32(r.y - r.x);
        let total = n + nb;
        let delta = partials[2u * t] - mu;
        mu += delta * nb / total;
        sq += partials[2u * t + 1u] + delta * delta * n * nb / total;
        n = total;
    }
    return vec2<f32>(mu, sq);
}

// flags: bit 0 training (batch statistics, update the running ones), bit 1 modified BN,
// bit 3 affine parameters.
@compute @workgroup_size(64, 1, 1)
fn bn_stats(@builtin(global_invocation_id) gid: vec3<u32>,
            @builtin(num_workgroups) nwg: vec3<u32>) {
    let c = gid.y * nwg.x * 64u + gid.x;
    if (c >= p.channels) { return; }
    if ((p.flags & 1u) == 0u) {
        stats[c] = running_mean[c];
        stats[p.channels + c] = running_var[c];
        return;
    }
    let count = p.batch * p.plane;
    let m = channel_moments(c);
    let mu = m.x;
    let sq = m.y;
    let biased = sq / f32(count);
    let unbiased = sq / f32(max(count, 2u) - 1u);
    stats[c] = mu;
    stats[p.channels + c] = biased;
    // Bit 2: one rank's share of a process group's batch; the host combines the ranks'
    // statistics and updates the running ones (`batch_norm` in norm.rs).
    if ((p.flags & 4u) != 0u) { return; }
    running_mean[c] = (1.0 - p.momentum) * running_mean[c] + p.momentum * mu;
    running_var[c] = (1.0 - p.momentum) * running_var[c] + p.momentum * unbiased;
}

@compute @workgroup_size(256, 1, 1)
fn bn_apply(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_index) lid: u32) {
    let mean_var = workgroup_mean_running_var(lid);
    let e = (wg.y * nwg.x + wg.x) * 256u + lid;
    if (e >= p.batch * p.channels * p.plane) { return; }
    let c = (e / p.plane) % p.channels;
    var y = (x[e] - stats[c]) / sqrt(stats[p.channels + c] + p.eps);
    if ((p.flags & 8u) != 0u) { y = affine[c] * y + affine[p.channels + c]; }
    out[e] = y * modified_factor(c, mean_var);
}

@compute @workgroup_size(64, 1, 1)
fn bn_backward_stats(@builtin(global_invocation_id) gid: vec3<u32>,
                     @builtin(num_workgroups) nwg: vec3<u32>) {
    let c = gid.y * nwg.x * 64u + gid.x;
    if (c >= p.channels) { return; }
    var sums = vec2<f32>(0.0, 0.0);
    if ((p.flags & 1u) != 0u) { sums = channel_dy_sums(c); }
    let count = f32(p.batch * p.plane);
    grad_stats[c] = sums.x / count;
    grad_stats[p.channels + c] = sums.y / count;
}

@compute @workgroup_size(256, 1, 1)
fn bn_backward_affine(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                      @builtin(local_invocation_index) lid: u32) {
    let mean_var = workgroup_mean_running_var(lid);
    let c = (wg.y * nwg.x + wg.x) * 256u + lid;
    if (c >= p.channels) { return; }
    let sums = channel_dy_sums(c);
    let f = modified_factor(c, mean_var);
    grad_affine[c] = f * sums.y;
    grad_affine[p.channels + c] = f * sums.x;
}

@compute @workgroup_size(256, 1, 1)
fn bn_backward_apply(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_index) lid: u32) {
    let mean_var = workgroup_mean_running_var(lid);
    let e = (wg.y * nwg.x + wg.x) * 256u + lid;
    if (e >= p.batch * p.channels * p.plane) { return; }
    let c = (e / p.plane) % p.channels;
    let s = sqrt(stats[p.channels + c] + p.eps);
    let xhat = (x[e] - stats[c]) / s;
    dx[e] = modified_factor(c, mean_var) * scale_of(c) / s
        * (dy[e] - grad_stats[c] - xhat * grad_stats[p.channels + c]);
}
