//! Runs the `filemeta` pass alone on each file given and prints its JSON
//! result, one line per file. The benchmark uses it to time the pass without
//! the mesh around it.

fn main() {
    for path in std::env::args_os().skip(1) {
        match multiscanner_worker::modules::filemeta::analyse(std::path::Path::new(&path)) {
            Ok(v) => println!("{v}"),
            Err(e) => {
                eprintln!("{}: {e}", path.to_string_lossy());
                std::process::exit(1);
            }
        }
    }
}
