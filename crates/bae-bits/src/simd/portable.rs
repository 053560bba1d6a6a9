//! Plain-Rust kernels. `#[inline(always)]` so that the `popcnt`-enabled wrappers in `x86` get
//! their own copy compiled with the instruction.

use super::{SP_I, SP_K, SignBlock};

#[inline(always)]
pub fn count_majors(words: &[u64], wpm: usize, out: &mut [u32]) {
    if wpm == 0 {
        out.fill(0);
        return;
    }
    for (o, w) in out.iter_mut().zip(words.chunks_exact(wpm)) {
        *o = w.iter().map(|x| x.count_ones()).sum();
    }
}

/// Register tile of 2 j columns x 4 k columns over the plain column layout. Missing columns
/// (beyond `cols`) are read as a valid column and their counts zeroed afterwards.
#[inline(always)]
pub fn column_block_counts(
    words: &[u64],
    wpc: usize,
    cols: usize,
    jb: usize,
    kb: usize,
    counts: &mut [u32; 4096],
) {
    column_block_tiles(words, wpc, cols, jb, kb, counts, |a, b| {
        let mut acc = [[0u32; 4]; 2];
        for w in 0..wpc {
            let (x0, x1) = (a[0][w], a[1][w]);
            for q in 0..4 {
                let y = b[q][w];
                acc[0][q] += (x0 & y).count_ones();
                acc[1][q] += (x1 & y).count_ones();
            }
        }
        acc
    })
}

/// The block's 2 x 4 tiles of columns (`a`: two j columns, `b`: four k columns, each `wpc`
/// words), counted by `tile`; columns at or beyond `cols` repeat the last one and are not stored.
#[inline(always)]
pub fn column_block_tiles(
    words: &[u64],
    wpc: usize,
    cols: usize,
    jb: usize,
    kb: usize,
    counts: &mut [u32; 4096],
    mut tile: impl FnMut([&[u64]; 2], [&[u64]; 4]) -> [[u32; 4]; 2],
) {
    counts.fill(0);
    if cols == 0 {
        return;
    }
    let col = |j: usize| &words[j.min(cols - 1) * wpc..(j.min(cols - 1) + 1) * wpc];
    let (j0, k0) = (jb * 64, kb * 64);
    let jn = cols.saturating_sub(j0).min(64);
    let kn = cols.saturating_sub(k0).min(64);
    for jj in (0..jn).step_by(2) {
        let a = [col(j0 + jj), col(j0 + jj + 1)];
        for kk in (0..kn).step_by(4) {
            let b: [&[u64]; 4] = std::array::from_fn(|q| col(k0 + kk + q));
            let acc = tile(a, b);
            for (r, acc) in acc.iter().enumerate() {
                for (q, &v) in acc.iter().enumerate() {
                    if jj + r < jn && kk + q < kn {
                        counts[(jj + r) * 64 + kk + q] = v;
                    }
                }
            }
        }
    }
}

#[inline(always)]
pub fn sign_block(s: &SignBlock<'_>, pos: &mut [u64; 64], neg: &mut [u64; 64]) -> u128 {
    let n = s.n as i128;
    let mut abs = 0u128;
    for jj in 0..64 {
        let cj = s.cj[jj] as i128;
        let (mut pw, mut nw) = (0u64, 0u64);
        let k0 = if s.diag { jj + 1 } else { 0 };
        for kk in k0..64 {
            let d = n * s.counts[jj * 64 + kk] as i128 - cj * s.ck[kk] as i128;
            pw |= ((d > 0) as u64) << kk;
            nw |= ((d < 0) as u64) << kk;
            abs += d.unsigned_abs();
        }
        pos[jj] = pw;
        neg[jj] = nw;
    }
    abs
}

#[inline(always)]
pub fn signed_dot(row: &[u64], pos: &[u64], neg: &[u64]) -> i32 {
    let mut s = 0i32;
    for ((&x, &y), &z) in row.iter().zip(pos).zip(neg) {
        s += (x & y).count_ones() as i32 - (x & z).count_ones() as i32;
    }
    s
}

#[inline(always)]
pub fn sign_micro<const SIGNED: bool>(
    rows: &[&[u64]; SP_I],
    pos: &[&[u64]; SP_K],
    neg: &[&[u64]; SP_K],
) -> [[i32; SP_K]; SP_I] {
    let mut acc = [[0i32; SP_K]; SP_I];
    for (a, r) in acc.iter_mut().zip(rows) {
        for ((a, p), q) in a.iter_mut().zip(pos).zip(neg) {
            let mut s = 0i32;
            for ((&x, &y), &z) in r.iter().zip(p.iter()).zip(q.iter()) {
                s += (x & y).count_ones() as i32;
                if SIGNED {
                    s -= (x & z).count_ones() as i32;
                }
            }
            *a = s;
        }
    }
    acc
}
