use std::time::Instant;
fn mm(dst: &mut [f32], a: &[f32], b: &[f32], m: usize, k: usize, n: usize, par: gemm::Parallelism) {
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            1,
            n as isize,
            0.0f32,
            1.0f32,
            false,
            false,
            false,
            par,
        )
    }
}
fn main() {
    for m in [1024usize, 2048] {
        for (k, n) in [(576usize, 960usize), (576, 576), (576, 3072), (1536, 576)] {
            let a = vec![0.5f32; m * k];
            let b = vec![0.25f32; k * n];
            let mut c = vec![0f32; m * n];
            let it = 10;
            mm(&mut c, &a, &b, m, k, n, gemm::Parallelism::Rayon(2));
            let t = Instant::now();
            for _ in 0..it {
                mm(&mut c, &a, &b, m, k, n, gemm::Parallelism::Rayon(2));
            }
            let e = t.elapsed().as_secs_f64() / it as f64;
            let t = Instant::now();
            for _ in 0..it {
                mm(&mut c, &a, &b, m, k, n, gemm::Parallelism::None);
            }
            let e1 = t.elapsed().as_secs_f64() / it as f64;
            // two threads each doing half the rows single-threaded
            let t = Instant::now();
            for _ in 0..it {
                let (c1, c2) = c.split_at_mut(m / 2 * n);
                let (a1, a2) = a.split_at(m / 2 * k);
                rayon::join(
                    || mm(c1, a1, &b, m / 2, k, n, gemm::Parallelism::None),
                    || mm(c2, a2, &b, m / 2, k, n, gemm::Parallelism::None),
                );
            }
            let e2 = t.elapsed().as_secs_f64() / it as f64;
            let fl = 2.0 * (m * k * n) as f64 / 1e9;
            println!(
                "m{m} {k}x{n}: rayon2 {:.0} GF/s, single {:.0} GF/s, split-rows {:.0} GF/s",
                fl / e,
                fl / e1,
                fl / e2
            );
        }
    }
}
