// crash.rs - a Rust program that writes through a null pointer two calls down
// (test_langs.py compiles it with rustc -g).
#[inline(never)]
fn level3(p: *mut i32) { unsafe { std::ptr::write_volatile(p, 42); } }
#[inline(never)]
fn level2(p: *mut i32) { level3(p); }
fn main() { level2(std::ptr::null_mut()); }
