// The supervised classifier's loss and metrics over logits Z (N x K) and labels (N, stored as
// f32 class indices, exact below 2^24).
//   softmax_xent: p = softmax(z_n) (stabilised by the row max);
//                 loss_n = −log p[label_n] = log Σ_k exp(z_nk − m) − (z_n,label − m);
//                 grad[n, k] = s·(p_k − [k == label_n])   (s = 1/N for the batch mean)
//   tanh_power:   Krotov & Hopfield's head: c = tanh(β·z_n), t_k = +1 for k == label_n, −1
//                 otherwise; loss_n = Σ_k |c_k − t_k|^m;
//                 grad[n, k] = s·m·|c_k − t_k|^(m−1)·sign(c_k − t_k)·β·(1 − c_k²)
//   correct:      correct_n = 1 if the first argmax of z_n is label_n, else 0
// Bounds: one invocation per row n < N; labels are clamped to 0..K-1 before indexing (the
// launcher's `labels_tensor` refuses labels outside 0..K).

struct ClassifierParams {
    n: u32, k: u32, _pad0: u32, _pad1: u32,
    s: f32, beta: f32, power: f32, _pad4: f32,
}

@group(0) @binding(0) var<uniform> p: ClassifierParams;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> labels: array<f32>;
@group(0) @binding(3) var<storage, read_write> loss: array<f32>;
@group(0) @binding(4) var<storage, read_write> grad: array<f32>;

fn row_index(gid: vec3<u32>, nwg: vec3<u32>) -> u32 {
    return gid.y * nwg.x * 64u + gid.x;
}

@compute @workgroup_size(64, 1, 1)
fn softmax_xent(@builtin(global_invocation_id) gid: vec3<u32>,
                @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = row_index(gid, nwg);
    if (row >= p.n) { return; }
    let base = row * p.k;
    // Clamped so a label outside 0..K can never index past the row.
    let label = min(u32(labels[row]), p.k - 1u);
    var m = logits[base];
    for (var j = 1u; j < p.k; j++) { m = max(m, logits[base + j]); }
    var total = 0.0;
    for (var j = 0u; j < p.k; j++) { total += exp(logits[base + j] - m); }
    loss[row] = log(total) - (logits[base + label] - m);
    for (var j = 0u; j < p.k; j++) {
        let q = exp(logits[base + j] - m) / total;
        grad[base + j] = p.s * (q - select(0.0, 1.0, j == label));
    }
}

@compute @workgroup_size(64, 1, 1)
fn correct(@builtin(global_invocation_id) gid: vec3<u32>,
           @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = row_index(gid, nwg);
    if (row >= p.n) { return; }
    let base = row * p.k;
    var best = 0u;
    for (var j = 1u; j < p.k; j++) {
        if (logits[base + j] > logits[base + best]) { best = j; }
    }
    loss[row] = select(0.0, 1.0, best == min(u32(labels[row]), p.k - 1u));
}

@compute @workgroup_size(64, 1, 1)
fn tanh_power(@builtin(global_invocation_id) gid: vec3<u32>,
              @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = row_index(gid, nwg);
    if (row >= p.n) { return; }
    let base = row * p.k;
    let label = min(u32(labels[row]), p.k - 1u);
    var total = 0.0;
    for (var j = 0u; j < p.k; j++) {
        // 1 − c and 1 + c without the cancellation of 1 − tanh(a) where tanh saturates, and
        // without an exp that could overflow (WGSL need not produce infinities):
        // with e = e^(−2|a|) ∈ (0, 1] and q = 2/(1 + e), the side of a's sign is q and the
        // other q·e (1 − c = 2e^(−2a)/(1 + e^(−2a)) for a ≥ 0; 1 + c likewise for a < 0).
        let a = p.beta * logits[base + j];
        let e = exp(-2.0 * abs(a));
        let q = 2.0 / (1.0 + e);
        let one_minus = select(q, q * e, a >= 0.0);
        let one_plus = select(q * e, q, a >= 0.0);
        // d = c − t: c − 1 = −(1 − c) for the label, c + 1 = 1 + c for the others.
        let d = select(one_plus, -one_minus, j == label);
        // |d| ≤ 2 and m ≥ 1: pow of a non-negative base with a non-negative exponent.
        let ad = abs(d);
        total += pow(ad, p.power);
        grad[base + j] = p.s * p.power * pow(ad, p.power - 1.0) * sign(d) * p.beta
            * one_minus * one_plus;
    }
    loss[row] = total;
}
