#![no_main]
use libfuzzer_sys::fuzz_target;
use misdirect_fuzz::policy::Input;

// Serve (warn_only or not) ⇒ the certificate covers the host and the client-certificate
// rule holds; Strict serves ⊆ Secure serves ⊆ CertOnly serves; warn_only reports the same
// reason, and a refusal for cover or the client-certificate rule stays a refusal.
fuzz_target!(|input: Input| input.check());
