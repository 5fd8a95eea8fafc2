//! Finding what a module asks for in its bytes: the `hotwasm:capabilities`
//! custom sections of a component and of everything it nests.

use wasmparser::{Chunk, Parser, Payload};

/// The name of the custom section a module asks for its capabilities in.
pub const SECTION: &str = "hotwasm:capabilities";

/// The `hotwasm:capabilities` sections of a component, its nested
/// components and its core modules, joined by line breaks (a manifest
/// split over several sections reads as one); `None` when it has none. Bytes that are not a
/// well-formed binary yield what was found before the damage: compiling
/// refuses such bytes anyway.
pub fn find_section(bytes: &[u8]) -> Option<Vec<u8>> {
    let mut found: Option<Vec<u8>> = None;
    // Each binary is read on its own, so damage in one nested module hides
    // nothing outside it. A binary's own sections come before those of the
    // binaries it nests, the last nested first: a manifest's error names a
    // line of the sections joined in this order.
    let mut pending = vec![bytes];
    while let Some(binary) = pending.pop() {
        let mut parser = Parser::new(0);
        while let Some(payload) = next_payload(&mut parser, binary) {
            match payload {
                Payload::CustomSection(reader) if reader.name() == SECTION => {
                    let manifest = found.get_or_insert_with(Vec::new);
                    if !manifest.is_empty() {
                        manifest.push(b'\n');
                    }
                    manifest.extend_from_slice(reader.data());
                }
                // Only a component nests binaries; the parser skips over
                // them, and they are read in turn.
                Payload::ModuleSection {
                    unchecked_range, ..
                }
                | Payload::ComponentSection {
                    unchecked_range, ..
                } => {
                    let Some(nested) = binary.get(unchecked_range) else {
                        break;
                    };
                    pending.push(nested);
                }
                Payload::CodeSectionStart { .. } => parser.skip_section(),
                Payload::End(_) => break,
                _ => {}
            }
        }
    }
    found
}

/// The next section of `binary`, or `None` at damage.
fn next_payload<'a>(parser: &mut Parser, binary: &'a [u8]) -> Option<Payload<'a>> {
    // The parser's offset counts from the start of `binary`, past what it
    // skipped (a nested binary, a code section) as well as what it read; a
    // skip beyond the end is damage.
    let offset = usize::try_from(parser.offset()).ok()?;
    match parser.parse(binary.get(offset..)?, true) {
        Ok(Chunk::Parsed { payload, .. }) => Some(payload),
        _ => None,
    }
}
