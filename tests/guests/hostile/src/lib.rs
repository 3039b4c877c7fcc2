//! A plugin that tries everything a sandbox must stop. Each export is a different
//! attack; the host tests check that each ends in the right, specific error and
//! that the host keeps serving afterwards.

wit_bindgen::generate!({ path: "wit", world: "hostile" });

use std::hint::black_box;

struct Hostile;

/// The word `plant` fills memory with: derived from the seed, so no run of
/// it is in the component's own bytes. A block is eight of them, 64-byte
/// aligned.
fn mark(seed: u64) -> u64 {
    seed ^ 0x5741_5244_454e_2121
}

/// 64 KiB of the component's own static data for `plant` to write.
static mut PLANTED: [u64; 8192] = [0; 8192];

impl Guest for Hostile {
    fn spin() {
        let mut x: u64 = 0;
        loop {
            x = black_box(x.wrapping_add(1));
        }
    }

    fn spin_logging() {
        let mut turn: u64 = 0;
        loop {
            turn += 1;
            if turn.is_multiple_of(1_000_000) {
                warden_sdk::trace!("turn {turn}");
            }
            black_box(turn);
        }
    }

    fn memory_bomb() -> u32 {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            let block = vec![1u8; 1 << 20];
            hoard.push(black_box(block));
            if hoard.len() == usize::MAX {
                return 0;
            }
        }
    }

    fn allocate(mib: u32) -> u32 {
        let block = vec![7u8; (mib as usize) << 20];
        black_box(&block)
            .iter()
            .step_by(4096)
            .map(|&b| u32::from(b))
            .sum()
    }

    fn burn(iterations: u64) -> u64 {
        let mut acc: u64 = 1;
        for i in 0..iterations {
            acc = black_box(acc.wrapping_mul(6364136223846793005).wrapping_add(i));
        }
        acc
    }

    fn recurse(depth: u32) -> u32 {
        fn down(depth: u32, pad: [u64; 8]) -> u32 {
            if depth == 0 {
                return black_box(pad[0]) as u32;
            }
            let pad = black_box([pad[0] + 1; 8]);
            1 + down(depth - 1, pad)
        }
        down(depth, [0; 8])
    }

    fn panic(message: String) {
        panic!("{message}");
    }

    fn trap() {
        #[cfg(target_arch = "wasm32")]
        core::arch::wasm32::unreachable();
    }

    fn big_result(mib: u32) -> String {
        "x".repeat((mib as usize) << 20)
    }

    fn log_flood(total: u64) {
        let line = "y".repeat(1024);
        let mut written = 0;
        while written < total {
            warden_sdk::info!("{line}");
            written += 1024;
        }
    }

    fn print_flood(total: u64) {
        use std::io::Write;
        let line = "z".repeat(1023) + "\n";
        let mut out = std::io::stdout();
        let mut written = 0;
        while written < total {
            out.write_all(line.as_bytes()).unwrap();
            written += 1024;
        }
        out.flush().unwrap();
    }

    fn log_message(bytes: u32) {
        warden_sdk::log::write(warden_sdk::log::Level::Info, &"m".repeat(bytes as usize));
    }

    fn log_empty(count: u32) {
        for _ in 0..count {
            warden_sdk::log::write(warden_sdk::log::Level::Info, "");
        }
    }

    fn read_file(path: String) -> Result<String, String> {
        std::fs::read_to_string(&path).map_err(|e| e.to_string())
    }

    fn list_dir(path: String) -> Result<Vec<String>, String> {
        let entries = std::fs::read_dir(&path).map_err(|e| e.to_string())?;
        Ok(entries
            .filter_map(Result::ok)
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect())
    }

    fn open_socket(address: String) -> Result<(), String> {
        std::net::TcpStream::connect(&address)
            .map(drop)
            .map_err(|e| e.to_string())
    }

    fn env_var(name: String) -> Option<String> {
        std::env::var(name).ok()
    }

    fn sleep(ms: u64) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }

    fn plant(seed: u64, mib: u32) -> u64 {
        let word = mark(seed);
        #[allow(static_mut_refs)]
        // SAFETY: one instance, one thread; nothing else refers to PLANTED.
        unsafe {
            PLANTED.fill(word);
            black_box(&PLANTED);
        }
        let mut on_stack = [word; 512];
        black_box(&mut on_stack);
        let on_heap = vec![word; (mib as usize) << 17];
        black_box(&on_heap);
        Self::scavenge(seed, 0)
    }

    fn scavenge(seed: u64, grow_mib: u32) -> u64 {
        let word = black_box(mark(seed));
        #[cfg(target_arch = "wasm32")]
        let end = {
            core::arch::wasm32::memory_grow(0, (grow_mib as usize) * 16);
            core::arch::wasm32::memory_size(0) * 65536
        };
        #[cfg(not(target_arch = "wasm32"))]
        let end = {
            let _ = grow_mib;
            0
        };
        let mut found = 0;
        // Every 64-byte block of linear memory but the first (address 0).
        let mut at = 64;
        while at + 64 <= end {
            let block = at as *const u64;
            // SAFETY: `at..at + 64` is inside linear memory, which is all
            // readable; the values are only compared.
            if (0..8).all(|i| unsafe { block.add(i).read_volatile() } == word) {
                found += 1;
            }
            at += 64;
        }
        found
    }

    fn ping() -> String {
        "pong".to_owned()
    }
}

export!(Hostile);
