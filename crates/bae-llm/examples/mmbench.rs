use candle_core::{Device, Tensor, DType};
use std::time::Instant;
fn main() {
    let d = Device::Cpu;
    let x = Tensor::randn(0f32, 1.0, (1024, 576), &d).unwrap();
    for (k, n) in [(576usize, 960usize), (576, 576), (576, 3072), (1536, 576)] {
        let xx = Tensor::randn(0f32, 1.0, (1024, k), &d).unwrap();
        let w = Tensor::randn(0f32, 1.0, (k, n), &d).unwrap();
        let wt = Tensor::randn(0f32, 1.0, (n, k), &d).unwrap();
        let _ = xx.matmul(&w).unwrap();
        let t = Instant::now();
        for _ in 0..20 { let _ = xx.matmul(&w).unwrap(); }
        let e = t.elapsed().as_secs_f64() / 20.0;
        let t2 = Instant::now();
        for _ in 0..20 { let _ = xx.matmul(&wt.t().unwrap()).unwrap(); }
        let e2 = t2.elapsed().as_secs_f64() / 20.0;
        println!("{k}x{n}: {:.2} ms {:.1} GFLOP/s | transposed {:.2} ms", e*1e3, 2.0*1024.0*(k*n) as f64/e/1e9, e2*1e3);
    }
    let _ = x; let _ = DType::F32;
    let s = Tensor::randn(0f32, 1.0, (8, 3, 384, 128), &d).unwrap();
    let t = Instant::now();
    for _ in 0..20 { let _ = candle_nn::ops::softmax_last_dim(&s).unwrap(); }
    println!("softmax {:.2} ms", t.elapsed().as_secs_f64() / 20.0 * 1e3);
    let g = Tensor::randn(0f32, 1.0, (1024, 3072), &d).unwrap();
    let t = Instant::now();
    for _ in 0..20 { let _ = candle_nn::ops::swiglu(&g).unwrap(); }
    println!("swiglu {:.2} ms", t.elapsed().as_secs_f64() / 20.0 * 1e3);
    let a = Tensor::randn(0f32, 1.0, (1024, 576), &d).unwrap();
    let al = Tensor::randn(0f32, 1.0, 576, &d).unwrap();
    let t = Instant::now();
    for _ in 0..20 { let _ = candle_nn::ops::rms_norm(&a, &al, 1e-5).unwrap(); }
    println!("rmsnorm {:.2} ms", t.elapsed().as_secs_f64() / 20.0 * 1e3);
    let q = Tensor::randn(0f32, 1.0, (8, 3, 384, 64), &d).unwrap();
    let k = Tensor::randn(0f32, 1.0, (8, 3, 128, 64), &d).unwrap();
    let t = Instant::now();
    for _ in 0..20 { let _ = q.matmul(&k.t().unwrap()).unwrap(); }
    println!("qk {:.2} ms", t.elapsed().as_secs_f64() / 20.0 * 1e3);
    let qkv = Tensor::randn(0f32, 1.0, (1024, 960), &d).unwrap();
    let t = Instant::now();
    for _ in 0..20 { let _ = qkv.reshape((8,128,15,64)).unwrap().transpose(1,2).unwrap().contiguous().unwrap(); }
    println!("transpose {:.2} ms", t.elapsed().as_secs_f64() / 20.0 * 1e3);
}
