//! `lambda-gen`: see `lambda-gen --help` and the `cli` module.

fn main() {
    if let Err(e) = lambda_gen_rs::cli::try_main() {
        eprintln!("error: {}", e.message);
        std::process::exit(e.code);
    }
}
