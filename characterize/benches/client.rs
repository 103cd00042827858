//! Client overhead per streamed token, and how many concurrent streams one core sustains.
//!
//! A fast local streamer (a hand-written HTTP/1.1 SSE server, no model work) runs in a child
//! process, so this process's CPU time (`getrusage`) is the client's alone. The client runs on
//! a single-threaded tokio runtime: one core.
//!
//! 1. **Per-token cost**: 64 streams of 2,000 tokens, sent as fast as the streamer can: client
//!    CPU microseconds per token at full speed.
//! 2. **Concurrent streams**: N streams of 100 tokens paced at 50 ms (20 tokens/s each, a
//!    loaded server's pace) for N = 250 .. 4,000. A level is *sustained* when every stream
//!    completes, the client core is below 90% busy and the median measured gap stays within
//!    10% of the paced 50 ms.
//!
//! Targets (the issue): 2,000 concurrent streams, under 50 µs of client CPU per token.
//! Run: `cargo bench -p pilot-characterize --bench client` (optimised), or with
//! `--profile dev` to smoke-test it unoptimised (numbers then overstate the cost).

use pilot_characterize::client::{Api, Client, ClientOptions, Prompt};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn main() {
    raise_fd_limit();
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--serve") {
        serve();
        return;
    }
    let exe = std::env::current_exe().expect("own path");
    let mut child = Command::new(exe)
        .arg("--serve")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the streamer");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("piped"))
        .read_line(&mut line)
        .expect("streamer port");
    let port: u16 = line.trim().parse().expect("a port number");
    let base = format!("http://127.0.0.1:{port}/v1");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    println!("client: one core (current-thread tokio); streamer in a separate process");
    let r = rt.block_on(run(&base, 64, 2000, 0));
    println!(
        "per-token cost: {} streams x 2000 tokens as fast as served: {:.2} us client CPU per token, {:.0} tokens/s on one core, {} failed",
        64,
        r.us_per_token,
        r.tokens as f64 / r.wall.as_secs_f64(),
        r.failed
    );
    let mut best = 0;
    for n in [250, 500, 1000, 2000, 3000, 4000] {
        let r = rt.block_on(run(&base, n, 100, 50));
        let sustained = r.failed == 0 && r.busy < 0.9 && r.itl_p50_ms <= 55.0;
        if sustained {
            best = n;
        }
        println!(
            "{n:>5} streams x 100 tokens @ 50 ms: {:.2} us/token, client core {:.0}% busy, ITL p50 {:.1} ms p99 {:.1} ms, {} failed -> {}",
            r.us_per_token,
            r.busy * 100.0,
            r.itl_p50_ms,
            r.itl_p99_ms,
            r.failed,
            if sustained {
                "sustained"
            } else {
                "NOT sustained"
            }
        );
    }
    println!("most concurrent streams sustained on one client core: {best} (target 2000)");
    let _ = child.kill();
    let _ = child.wait();
}

struct Result {
    tokens: u64,
    failed: u64,
    wall: Duration,
    us_per_token: f64,
    busy: f64,
    itl_p50_ms: f64,
    itl_p99_ms: f64,
}

async fn run(base: &str, streams: usize, tokens: u32, itl_ms: u32) -> Result {
    let client = Arc::new(
        Client::new(ClientOptions {
            base_url: base.to_string(),
            model: format!("itl-{itl_ms}"),
            api: Api::Completions,
            api_key: None,
            tokenizer: None,
            timeout: Duration::from_secs(300),
            exact_output: true,
            extra_body: Default::default(),
            headers: Vec::new(),
        })
        .expect("client"),
    );
    let cpu0 = cpu_time();
    let t0 = Instant::now();
    let tasks: Vec<_> = (0..streams)
        .map(|_| {
            let c = client.clone();
            tokio::spawn(async move { c.send(&Prompt::Ids(vec![11; 8]), tokens).await })
        })
        .collect();
    let mut outcomes = Vec::with_capacity(streams);
    for t in tasks {
        outcomes.push(t.await.expect("task"));
    }
    let wall = t0.elapsed();
    let cpu = cpu_time() - cpu0;
    let total: u64 = outcomes.iter().map(|o| o.token_times.len() as u64).sum();
    let failed = outcomes.iter().filter(|o| o.failure.is_some()).count() as u64;
    if let Some(f) = outcomes.iter().find(|o| o.failure.is_some()) {
        eprintln!("  first failure: {:?}: {}", f.failure, f.error);
    }
    let mut itls: Vec<f64> = outcomes
        .iter()
        .flat_map(|o| o.token_times.windows(2).map(|w| w[1].0 - w[0].0))
        .collect();
    itls.sort_by(f64::total_cmp);
    let pct = |q: f64| {
        if itls.is_empty() {
            0.0
        } else {
            itls[((itls.len() - 1) as f64 * q) as usize]
        }
    };
    Result {
        tokens: total,
        failed,
        wall,
        us_per_token: cpu.as_secs_f64() * 1e6 / total.max(1) as f64,
        busy: cpu.as_secs_f64() / wall.as_secs_f64(),
        itl_p50_ms: pct(0.5),
        itl_p99_ms: pct(0.99),
    }
}

/// User + system CPU time of this process.
fn cpu_time() -> Duration {
    // SAFETY: getrusage fills the struct we own.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

fn raise_fd_limit() {
    // SAFETY: get/setrlimit on our own process.
    unsafe {
        let mut l: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut l) == 0 {
            l.rlim_cur = l.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &l);
        }
    }
}

/// The streamer: HTTP/1.1 keep-alive, chunked SSE, `max_tokens` tokens at the pace the model
/// name asks (`itl-50` = 50 ms apart, `itl-0` = as fast as the socket takes them).
fn serve() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        println!("{}", l.local_addr().expect("addr").port());
        loop {
            let Ok((sock, _)) = l.accept().await else {
                continue;
            };
            let _ = sock.set_nodelay(true);
            tokio::spawn(connection(sock));
        }
    });
}

async fn connection(mut sock: tokio::net::TcpStream) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(4096);
    let mut chunk = [0u8; 4096];
    loop {
        let (head_end, content_length) = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                let len = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(0);
                break (i + 4, len);
            }
            let n = sock.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        while buf.len() < head_end + content_length {
            let n = sock.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let body: serde_json::Value =
            serde_json::from_slice(&buf[head_end..head_end + content_length]).unwrap_or_default();
        buf.drain(..head_end + content_length);
        let tokens = body["max_tokens"].as_u64().unwrap_or(16);
        let itl = body["model"]
            .as_str()
            .and_then(|m| m.strip_prefix("itl-"))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0u64);
        sock.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
            .await?;
        let mut tick = tokio::time::interval(Duration::from_millis(itl.max(1)));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        for i in 0..tokens {
            if itl > 0 {
                tick.tick().await;
            }
            let finish = if i + 1 == tokens {
                "\"length\""
            } else {
                "null"
            };
            let event = format!(
                "data: {{\"id\":\"cmpl-1\",\"object\":\"text_completion\",\"created\":0,\"model\":\"m\",\"choices\":[{{\"index\":0,\"text\":\" tok\",\"logprobs\":null,\"finish_reason\":{finish}}}]}}\n\n"
            );
            sock.write_all(format!("{:x}\r\n{event}\r\n", event.len()).as_bytes())
                .await?;
        }
        let tail = format!(
            "data: {{\"choices\":[],\"usage\":{{\"prompt_tokens\":8,\"completion_tokens\":{tokens}}}}}\n\ndata: [DONE]\n\n"
        );
        sock.write_all(format!("{:x}\r\n{tail}\r\n0\r\n\r\n", tail.len()).as_bytes())
            .await?;
    }
}
