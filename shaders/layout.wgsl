// Layout changes between the two activation layouts of a network:
//   rows:   (B·P) x C, row r = b·P + p holds the C channels of position p of image b; this is
//           what X·Wᵀ over an im2col patch matrix produces, and what the row-wise competition
//           and activation kernels read (softmax, triangle over channels).
//   planes: (B, C, P) = NCHW with P = H·W, what pooling, batch norm and im2col read.
//   rows_to_planes: planes[(b·C + c)·P + p] = rows[(b·P + p)·C + c]
//   planes_to_rows: rows[(b·P + p)·C + c] = planes[(b·C + c)·P + p]
//   blocks: (B·nby·nbx) x D, one row per non-overlapping bh x bw block of an H x W image
//           (nby = H/bh, nbx = W/bw), D = C·bh·bw in (c, ky, kx) order; ZCA whitening of
//           images larger than its 32 x 32 window multiplies these rows by the D x D matrix.
//   planes_to_blocks: blocks[((b·nby + by)·nbx + bx)·D + (c·bh + ky)·bw + kx]
//                     = planes[((b·C + c)·H + by·bh + ky)·W + bx·bw + kx]
//   blocks_to_planes: the inverse.
// Grid: one invocation per element e < B·C·P, indexed in the output's order (coalesced
// writes); a 2-D grid of 256-wide workgroups.
// Bounds: e < total = B·C·P (B·C·H·W for blocks) and both tensors hold total elements
// (checked by the launcher, which also checks that bh divides H and bw divides W).

// positions = H·W; height, width, block_h, block_w are read by the block kernels only.
struct LayoutParams {
    batch: u32, channels: u32, positions: u32, total: u32,
    height: u32, width: u32, block_h: u32, block_w: u32,
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

@compute @workgroup_size(256, 1, 1)
fn planes_to_blocks(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let e = element(wg, nwg, lid);
    if (e >= p.total) { return; }
    // e = ((b·nby + by)·nbx + bx)·D + (c·bh + ky)·bw + kx
    let d = p.channels * p.block_h * p.block_w;
    let nbx = p.width / p.block_w;
    let nby = p.height / p.block_h;
    let i = e % d;
    let row = e / d;
    let kx = i % p.block_w;
    let ky = (i / p.block_w) % p.block_h;
    let c = i / (p.block_w * p.block_h);
    let bx = row % nbx;
    let by = (row / nbx) % nby;
    let b = row / (nbx * nby);
    let y = by * p.block_h + ky;
    let x = bx * p.block_w + kx;
    dst[e] = src[((b * p.channels + c) * p.height + y) * p.width + x];
}

@compute @workgroup_size(256, 1, 1)
fn blocks_to_planes(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                    @builtin(local_invocation_index) lid: u32) {
    let e = element(wg, nwg, lid);
    if (e >= p.total) { return; }
    // e = ((b·C + c)·H + y)·W + x
    let d = p.channels * p.block_h * p.block_w;
    let nbx = p.width / p.block_w;
    let nby = p.height / p.block_h;
    let x = e % p.width;
    let y = (e / p.width) % p.height;
    let bc = e / (p.width * p.height);
    let c = bc % p.channels;
    let b = bc / p.channels;
    let row = (b * nby + y / p.block_h) * nbx + x / p.block_w;
    dst[e] = src[row * d + (c * p.block_h + y % p.block_h) * p.block_w + x % p.block_w];
}
