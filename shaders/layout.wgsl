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
// Grid: a 2-D grid of 256-wide workgroups; the block kernels run one invocation per element
// e < B·C·H·W, indexed in the output's order (coalesced writes), the row/plane transposes one
// per run of RUN elements (below).
// Bounds: every index written or read is < total = B·C·P (B·C·H·W for blocks): r < R and
// s < S by the run bounds, b < B by the invocation guard; both tensors hold total elements
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

// The two row/plane transposes are one batched transpose of an R x S matrix per image,
// src (B, R, S) -> dst (B, S, R): rows_to_planes with R = P, S = C, planes_to_rows with
// R = C, S = P. Invocation t = (b·ceil(S / RUN) + g)·R + r moves the RUN elements
// s = g·RUN + i < S of row r, so the index decomposition (integer divisions, which CPU
// adapters run one lane at a time) is paid once per RUN elements, and neighbouring invocations
// (neighbouring r) still write neighbouring addresses at each step (coalesced on GPUs).
const RUN: u32 = 8u;

fn transpose_run(t: u32, r_len: u32, s_len: u32) {
    let runs = (s_len + RUN - 1u) / RUN;
    if (t >= p.batch * runs * r_len) { return; }
    let r = t % r_len;
    let bg = t / r_len;
    let s0 = (bg % runs) * RUN;
    let b = bg / runs;
    let s_end = min(s0 + RUN, s_len);
    for (var s = s0; s < s_end; s++) {
        dst[(b * s_len + s) * r_len + r] = src[(b * r_len + r) * s_len + s];
    }
}

@compute @workgroup_size(256, 1, 1)
fn rows_to_planes(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    transpose_run(element(wg, nwg, lid), p.positions, p.channels);
}

@compute @workgroup_size(256, 1, 1)
fn planes_to_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_index) lid: u32) {
    transpose_run(element(wg, nwg, lid), p.channels, p.positions);
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
