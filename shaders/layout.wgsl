// Layout changes between the two activation layouts of a network:
//   rows:   (B·P) x C, row r = b·P + p holds the C channels of position p of image b; this is
//           what X·Wᵀ over an im2col patch matrix produces, and what the row-wise competition
//           and activation kernels read (softmax, triangle over channels).
//   planes: (B, C, P) = NCHW with P = H·W, what pooling, batch norm and im2col read.
//   rows_to_planes: planes[(b·C + c)·P + p] = rows[(b·P + p)·C + c]
//   planes_to_rows: rows[(b·P + p)·C + c] = planes[(b·C + c)·P + p]
// Grid: one invocation per element e < B·C·P, indexed in the output's order (coalesced
// writes); a 2-D grid of 256-wide workgroups.
// Bounds: e < total = B·C·P and both tensors hold total elements (checked by the launcher).

struct LayoutParams {
    batch: u32, channels: u32, positions: u32, total: u32,
}

@group(0) @binding(0) var<uniform> p: LayoutParams;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

fn element(wg: vec3<u32>, nwg: vec3<u32>, lid: u32) -> u32 {
    return (wg.y * nwg.x + wg.x) * 256u + lid;
}

@compute @workgroup_size(256, 1, 1)
fn rows_to_planes(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let e = element(wg, nwg, lid);
    if (e >= p.total) { return; }
    // e = (b·C + c)·P + q
    let q = e % p.positions;
    let bc = e / p.positions;
    let c = bc % p.channels;
    let b = bc / p.channels;
    dst[e] = src[(b * p.positions + q) * p.channels + c];
}

@compute @workgroup_size(256, 1, 1)
fn planes_to_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    let e = element(wg, nwg, lid);
    if (e >= p.total) { return; }
    // e = (b·P + q)·C + c
    let c = e % p.channels;
    let bq = e / p.channels;
    let q = bq % p.positions;
    let b = bq / p.positions;
    dst[e] = src[(b * p.channels + c) * p.positions + q];
}
