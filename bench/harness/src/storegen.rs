//! masqlog-storegen: writes a log file's lines through the evidence
//! store's writer (`masqlog_core::store`), as the plugin's `store_dir`
//! does, rolling hourly by the lines' own times and closing (compressing
//! and indexing) each segment; prints the writer's and the closer's CPU
//! time per record. For bench/lookup's store rows.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use masqlog_core::format::parse::parse_line;
use masqlog_core::store::{self, LiveIndexer, StoreConfig, StoreWriter};

#[derive(Parser, Debug)]
#[command(
    name = "masqlog-storegen",
    about = "Writes a log's lines into an evidence store (hourly segments by the lines' times)"
)]
struct Args {
    /// The log to read (plain).
    #[arg(long)]
    input: PathBuf,
    /// The store directory to write (created).
    #[arg(long)]
    store: PathBuf,
    /// Shift every segment by this many days (to build day N of a longer
    /// store from the same day of lines).
    #[arg(long, default_value_t = 0)]
    day: i64,
    /// Keep the live segment's index as the plugin's store thread does
    /// (brought up to date after every append, written when it has grown
    /// enough; a segment closed from it), and leave the last segment live.
    #[arg(long)]
    live: bool,
}

fn cpu() -> Duration {
    let mut ru = libc_rusage();
    ru.0 += ru.1;
    ru.0
}

/// (user, system) CPU of this process, from /proc/self/stat.
fn libc_rusage() -> (Duration, Duration) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |x| x.1);
    let f: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| {
        Duration::from_millis(f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0) * 10)
    };
    (tick(11), tick(12))
}

fn main() -> Result<()> {
    let a = Args::parse();
    let (mut w, _) = StoreWriter::open(StoreConfig {
        dir: a.store.clone(),
        roll: Duration::from_secs(3600),
        roll_bytes: 1 << 30,
        keep: Duration::from_secs(400 * 86_400),
        max_bytes: 0,
    })?;
    let f = std::fs::File::open(&a.input).with_context(|| a.input.display().to_string())?;
    let r = BufReader::with_capacity(1 << 20, f);
    let shift = a.day * 86_400;
    let (mut write_cpu, mut close_cpu) = (Duration::ZERO, Duration::ZERO);
    let mut n = 0u64;
    let mut buf = Vec::with_capacity(1 << 20);
    let mut last = 0i64;
    let wall = Instant::now();
    let mut live: Option<LiveIndexer> = None;
    let flush = |w: &mut StoreWriter,
                 live: &mut Option<LiveIndexer>,
                 buf: &mut Vec<u8>,
                 at: i64,
                 wc: &mut Duration,
                 cc: &mut Duration|
     -> Result<()> {
        // An append is a write(2) into the page cache: its wall time is
        // its CPU time (finer than the 10 ms ticks of /proc).
        let t0 = Instant::now();
        let rolled = w.append(buf, at)?;
        buf.clear();
        *wc += t0.elapsed();
        // The store thread's work: closing (from the live index when
        // there is one, as the plugin does) and keeping the live index.
        let c1 = cpu();
        if let Some(name) = rolled {
            match live.take_if(|l| l.name() == name) {
                Some(l) => l.close(&a.store)?,
                None => store::close_segment(&a.store, &name)?,
            };
        }
        if a.live
            && let Some((name, len)) = w.live_len()
        {
            if live.as_ref().is_none_or(|l| l.name() != name) {
                *live = Some(LiveIndexer::new(name));
            }
            if let Some(l) = live.as_mut() {
                l.advance(&a.store, len, false)?;
            }
        }
        *cc += cpu() - c1;
        Ok(())
    };
    for line in r.split(b'\n') {
        let line = line?;
        let text = String::from_utf8_lossy(&line);
        // The time the plugin would write the line: its own event's.
        let at = parse_line(&text)
            .ok()
            .and_then(|p| p.record.end.or(p.record.start))
            .map_or(last, |t| t.secs + shift);
        // The plugin writes a batch at a time: one append per second of lines.
        if at != last && !buf.is_empty() {
            flush(
                &mut w,
                &mut live,
                &mut buf,
                last,
                &mut write_cpu,
                &mut close_cpu,
            )?;
        }
        last = at;
        buf.extend_from_slice(&line);
        buf.push(b'\n');
        n += 1;
    }
    flush(
        &mut w,
        &mut live,
        &mut buf,
        last,
        &mut write_cpu,
        &mut close_cpu,
    )?;
    let c0 = cpu();
    if !a.live
        && let Some(name) = w.roll()
    {
        store::close_segment(&a.store, &name)?;
    }
    close_cpu += cpu() - c0;
    if let Some(l) = &live {
        println!(
            "masqlog-storegen: live segment {} left live, its index covering {} bytes",
            l.name(),
            l.covered()
        );
    }
    println!(
        "masqlog-storegen: {n} records in {:.1} s; writer {:.3} us/record (append), store thread CPU {:.3} us/record ({})",
        wall.elapsed().as_secs_f64(),
        write_cpu.as_secs_f64() * 1e6 / n.max(1) as f64,
        close_cpu.as_secs_f64() * 1e6 / n.max(1) as f64,
        if a.live {
            "live index, then compress at close"
        } else {
            "index and compress at close"
        },
    );
    Ok(())
}
