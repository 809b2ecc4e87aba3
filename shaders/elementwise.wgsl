// Elementwise f32 kernels over n elements (x and y start at their element offsets).
//   fill:  x[i] = value
//   scale: x[i] = alpha * x[i]
//   axpy:  y[i] = alpha * x[i] + y[i]
//   copy:  y[i] = x[i]
// Grid: a 2-D grid of 256-wide workgroups covering n (x dimension at most 65535 groups).

// Bounds: every access is at offset + i with i < n; the launcher checks the lengths.

struct ElementwiseParams {
    n: u32, offset_x: u32, offset_y: u32, first: u32,
    alpha: f32, value: f32, _pad1: u32, _pad2: u32,
}

@group(0) @binding(0) var<uniform> p: ElementwiseParams;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> src: array<f32>;
@group(0) @binding(3) var<storage, read_write> y: array<f32>;

fn index(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * 256u + lid;
}

@compute @workgroup_size(256, 1, 1)
fn fill(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = index(wg, nwg, lid);
    if (i < p.n) { x[p.offset_x + i] = p.value; }
}

@compute @workgroup_size(256, 1, 1)
fn scale(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
         @builtin(local_invocation_index) lid: u32) {
    let i = index(wg, nwg, lid);
    if (i < p.n) { x[p.offset_x + i] = p.alpha * x[p.offset_x + i]; }
}

@compute @workgroup_size(256, 1, 1)
fn axpy(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = index(wg, nwg, lid);
    if (i < p.n) { y[p.offset_y + i] = fma(p.alpha, src[p.offset_x + i], y[p.offset_y + i]); }
}

@compute @workgroup_size(256, 1, 1)
fn copy(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) lid: u32) {
    let i = index(wg, nwg, lid);
    if (i < p.n) { y[p.offset_y + i] = src[p.offset_x + i]; }
}

// dropout (inverted, as torch.nn.Dropout in training): y[i] = x[i]·keep(i)/(1 − rate), where
// keep(i) = [hash(seed, i) ≥ rate·2³²]; `alpha` holds the rate and `value` 1/(1 − rate), the
// seed is offset_y (a fresh one per step). The hash is a PCG-style integer mix, so the mask is
// reproducible from (seed, i) on every backend.
fn mix32(v: u32) -> u32 {
    var s = v * 747796405u + 2891336453u;
    let w = ((s >> ((s >> 28u) + 4u)) ^ s) * 277803737u;
    return (w >> 22u) ^ w;
}

@compute @workgroup_size(256, 1, 1)
fn dropout(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
           @builtin(local_invocation_index) lid: u32) {
    let i = index(wg, nwg, lid);
    if (i >= p.n) { return; }
    // The mask of element i is that of element first + i of the whole batch (a process
    // group's rank holds rows from `first`).
    let h = mix32(mix32(p.first + i) ^ p.offset_y);
    let keep = f32(h) >= p.alpha * 4294967296.0;
    x[p.offset_x + i] = select(0.0, x[p.offset_x + i] * p.value, keep);
}
