//! The byte format of a session [`Script`]: decoded by the `client_session` and
//! `guest_agent` targets, encoded by `make-corpus` to turn the captured vectors into seeds.
//!
//! Every byte string decodes to some script (missing bytes read as zero; the op list ends
//! with the input), so libFuzzer's mutations always produce a session. Integers are
//! little-endian.
//!
//! ```text
//! header  rx:u16 tx:u16 flags:u8 command_timeout:u16 greeting_timeout:u16 seed:u16 max_fragment:u8
//!         flags: 1 oob, 2 auto_transmit, 4 zero_copy, 8 command_timeout present,
//!                16 greeting_timeout present
//! op      tag:u8 (mod 11), then
//!   0 Feed          count:u8, then `count` pieces
//!   1 Execute       command
//!   2 Sync          value:u64
//!   3 Advance       ms:u16
//!   4 Timeout
//!   5 WaitDeadline
//!   6 Transmit      max:u16
//!   7 Cancel        index:u8
//!   8 SetDeadline   index:u8 present:u8 ms:u16
//!   9 Eof
//!  10 Close
//! command tag:u8 (mod 12): 0 QueryStatus 1 QueryVersion 2 Stop 3 Quit 4 QueryYankOob
//!         5 MigratePauseOob 6 QueryStatusOob 7 GuestPing 8 GuestShutdown(mode:u8 0 none,
//!         1 powerdown, 2 reboot) 9 GuestSuspendRam
//!         10 Raw  name oob:u8 present:u8 [tree]
//!         11 Json name oob:u8 kind:u8 (0 none, 1 bytes, 2 tree+pad:u8, 3 duplicate key)
//!                 [bytes | tree]
//! name    b:u8: below 0x80 a known name (index), else a string
//! string  len:u8 bytes (lossy UTF-8)
//! bytes   len:u16 bytes
//! tree    len:u16 bytes, decoded with `arbitrary` as an `encode::Tree`
//! piece   tag:u8 (mod 9), then
//!   0 Greeting    oob:u8
//!   1 Return      id value pretty:u8
//!   2 Error       id class:u8 id_first:u8
//!   3 Event       name:u8 data:u8
//!   4 SyncAnswer  current:u8 stale:u64
//!   5 Big         len:u16 id
//!   6 Sentinel
//!   7 Token       index:u8
//!   8 Bytes       bytes
//! id      tag:u8 (mod 6): 0 Absent 1 Issued(u8) 2 InFlight(u8) 3 Literal(u64) 4 Text(string)
//!         5 Odd(negative:u8)
//! value   tag:u8 (mod 5): 0 Empty 1 Int(u64) 2 Status 3 Text(string) 4 List(count:u8)
//! ```

use arbitrary::{Arbitrary, Unstructured};

use crate::encode::Tree;
use crate::session::{Cmd, IdRef, JsonArguments, Name, Op, Piece, Script, Value};

/// Reads the input front to back; past the end every read is zero.
struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    fn flag(&mut self) -> bool {
        self.u8() & 1 != 0
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    fn u64(&mut self) -> u64 {
        let mut bytes = [0u8; 8];
        for b in &mut bytes {
            *b = self.u8();
        }
        u64::from_le_bytes(bytes)
    }

    fn take(&mut self, len: usize) -> &'a [u8] {
        let len = len.min(self.data.len());
        let (head, rest) = self.data.split_at(len);
        self.data = rest;
        head
    }

    fn bytes(&mut self) -> Vec<u8> {
        let len = usize::from(self.u16());
        self.take(len).to_vec()
    }

    fn string(&mut self) -> String {
        let len = usize::from(self.u8());
        String::from_utf8_lossy(self.take(len)).into_owned()
    }

    fn tree(&mut self) -> Tree {
        let len = usize::from(self.u16());
        let mut u = Unstructured::new(self.take(len));
        Tree::arbitrary(&mut u).unwrap_or(Tree::Unit)
    }

    fn name(&mut self) -> Name {
        let b = self.u8();
        if b < 0x80 {
            Name::Known(b)
        } else {
            Name::Any(self.string())
        }
    }

    fn id(&mut self) -> IdRef {
        match self.u8() % 6 {
            0 => IdRef::Absent,
            1 => IdRef::Issued(self.u8()),
            2 => IdRef::InFlight(self.u8()),
            3 => IdRef::Literal(self.u64()),
            4 => IdRef::Text(self.string()),
            _ => IdRef::Odd(self.flag()),
        }
    }

    fn value(&mut self) -> Value {
        match self.u8() % 5 {
            0 => Value::Empty,
            1 => Value::Int(self.u64()),
            2 => Value::Status,
            3 => Value::Text(self.string()),
            _ => Value::List(self.u8()),
        }
    }

    fn piece(&mut self) -> Piece {
        match self.u8() % 9 {
            0 => Piece::Greeting { oob: self.flag() },
            1 => Piece::Return {
                id: self.id(),
                value: self.value(),
                pretty: self.flag(),
            },
            2 => Piece::Error {
                id: self.id(),
                class: self.u8(),
                id_first: self.flag(),
            },
            3 => Piece::Event {
                name: self.u8(),
                data: self.flag(),
            },
            4 => Piece::SyncAnswer {
                current: self.flag(),
                stale: self.u64(),
            },
            5 => Piece::Big {
                len: self.u16(),
                id: self.id(),
            },
            6 => Piece::Sentinel,
            7 => Piece::Token(self.u8()),
            _ => Piece::Bytes(self.bytes()),
        }
    }

    fn command(&mut self) -> Cmd {
        match self.u8() % 12 {
            0 => Cmd::QueryStatus,
            1 => Cmd::QueryVersion,
            2 => Cmd::Stop,
            3 => Cmd::Quit,
            4 => Cmd::QueryYankOob,
            5 => Cmd::MigratePauseOob,
            6 => Cmd::QueryStatusOob,
            7 => Cmd::GuestPing,
            8 => Cmd::GuestShutdown(match self.u8() % 3 {
                0 => None,
                1 => Some(false),
                _ => Some(true),
            }),
            9 => Cmd::GuestSuspendRam,
            10 => {
                let name = self.name();
                let oob = self.flag();
                let arguments = self.flag().then(|| self.tree());
                Cmd::Raw {
                    name,
                    arguments,
                    oob,
                }
            }
            _ => {
                let name = self.name();
                let oob = self.flag();
                let arguments = match self.u8() % 4 {
                    0 => None,
                    1 => Some(JsonArguments::Bytes(self.bytes())),
                    2 => {
                        let padded = self.flag();
                        Some(JsonArguments::Tree(self.tree(), padded))
                    }
                    _ => Some(JsonArguments::Duplicate),
                };
                Cmd::Json {
                    name,
                    arguments,
                    oob,
                }
            }
        }
    }

    fn op(&mut self) -> Op {
        match self.u8() % 11 {
            0 => {
                let count = self.u8();
                let mut pieces = Vec::new();
                for _ in 0..count {
                    if self.is_empty() {
                        break;
                    }
                    pieces.push(self.piece());
                }
                Op::Feed(pieces)
            }
            1 => Op::Execute(self.command()),
            2 => Op::Sync(self.u64()),
            3 => Op::Advance(self.u16()),
            4 => Op::Timeout,
            5 => Op::WaitDeadline,
            6 => Op::Transmit(self.u16()),
            7 => Op::Cancel(self.u8()),
            8 => {
                let index = self.u8();
                let present = self.flag();
                let ms = self.u16();
                Op::SetDeadline(index, present.then_some(ms))
            }
            9 => Op::Eof,
            _ => Op::Close,
        }
    }
}

/// The most operations one script runs (bounds the work per input).
pub const MAX_OPS: usize = 256;

impl Script {
    /// Decodes any bytes into a script (see the module docs for the format).
    pub fn decode(data: &[u8]) -> Script {
        let mut r = Reader { data };
        let rx = r.u16();
        let tx = r.u16();
        let flags = r.u8();
        let command_timeout = r.u16();
        let greeting_timeout = r.u16();
        let seed = r.u16();
        let max_fragment = r.u8();
        let mut ops = Vec::new();
        while !r.is_empty() && ops.len() < MAX_OPS {
            ops.push(r.op());
        }
        Script {
            rx,
            tx,
            oob: flags & 1 != 0,
            auto_transmit: flags & 2 != 0,
            zero_copy: flags & 4 != 0,
            command_timeout: (flags & 8 != 0).then_some(command_timeout),
            greeting_timeout: (flags & 16 != 0).then_some(greeting_timeout),
            seed,
            max_fragment,
            ops,
        }
    }

    /// Encodes the script. Scripts with [`Tree`] arguments cannot be encoded (`None`):
    /// seeds use the other operations.
    pub fn encode(&self) -> Option<Vec<u8>> {
        let mut w = Writer(Vec::new());
        w.u16(self.rx);
        w.u16(self.tx);
        w.u8(u8::from(self.oob)
            | u8::from(self.auto_transmit) << 1
            | u8::from(self.zero_copy) << 2
            | u8::from(self.command_timeout.is_some()) << 3
            | u8::from(self.greeting_timeout.is_some()) << 4);
        w.u16(self.command_timeout.unwrap_or(0));
        w.u16(self.greeting_timeout.unwrap_or(0));
        w.u16(self.seed);
        w.u8(self.max_fragment);
        for op in &self.ops {
            w.op(op)?;
        }
        Some(w.0)
    }
}

struct Writer(Vec<u8>);

impl Writer {
    fn u8(&mut self, b: u8) {
        self.0.push(b);
    }

    fn flag(&mut self, b: bool) {
        self.0.push(u8::from(b));
    }

    fn u16(&mut self, v: u16) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }

    fn bytes(&mut self, b: &[u8]) -> Option<()> {
        self.u16(u16::try_from(b.len()).ok()?);
        self.0.extend_from_slice(b);
        Some(())
    }

    fn string(&mut self, s: &str) -> Option<()> {
        self.u8(u8::try_from(s.len()).ok()?);
        self.0.extend_from_slice(s.as_bytes());
        Some(())
    }

    fn name(&mut self, name: &Name) -> Option<()> {
        match name {
            Name::Known(i) if *i < 0x80 => self.u8(*i),
            Name::Known(_) => return None,
            Name::Any(s) => {
                self.u8(0x80);
                self.string(s)?;
            }
        }
        Some(())
    }

    fn id(&mut self, id: &IdRef) -> Option<()> {
        match id {
            IdRef::Absent => self.u8(0),
            IdRef::Issued(k) => {
                self.u8(1);
                self.u8(*k);
            }
            IdRef::InFlight(k) => {
                self.u8(2);
                self.u8(*k);
            }
            IdRef::Literal(n) => {
                self.u8(3);
                self.u64(*n);
            }
            IdRef::Text(s) => {
                self.u8(4);
                self.string(s)?;
            }
            IdRef::Odd(negative) => {
                self.u8(5);
                self.flag(*negative);
            }
        }
        Some(())
    }

    fn value(&mut self, value: &Value) -> Option<()> {
        match value {
            Value::Empty => self.u8(0),
            Value::Int(n) => {
                self.u8(1);
                self.u64(*n);
            }
            Value::Status => self.u8(2),
            Value::Text(s) => {
                self.u8(3);
                self.string(s)?;
            }
            Value::List(n) => {
                self.u8(4);
                self.u8(*n);
            }
        }
        Some(())
    }

    fn piece(&mut self, piece: &Piece) -> Option<()> {
        match piece {
            Piece::Greeting { oob } => {
                self.u8(0);
                self.flag(*oob);
            }
            Piece::Return { id, value, pretty } => {
                self.u8(1);
                self.id(id)?;
                self.value(value)?;
                self.flag(*pretty);
            }
            Piece::Error {
                id,
                class,
                id_first,
            } => {
                self.u8(2);
                self.id(id)?;
                self.u8(*class);
                self.flag(*id_first);
            }
            Piece::Event { name, data } => {
                self.u8(3);
                self.u8(*name);
                self.flag(*data);
            }
            Piece::SyncAnswer { current, stale } => {
                self.u8(4);
                self.flag(*current);
                self.u64(*stale);
            }
            Piece::Big { len, id } => {
                self.u8(5);
                self.u16(*len);
                self.id(id)?;
            }
            Piece::Sentinel => self.u8(6),
            Piece::Token(t) => {
                self.u8(7);
                self.u8(*t);
            }
            Piece::Bytes(b) => {
                self.u8(8);
                self.bytes(b)?;
            }
        }
        Some(())
    }

    fn command(&mut self, cmd: &Cmd) -> Option<()> {
        match cmd {
            Cmd::QueryStatus => self.u8(0),
            Cmd::QueryVersion => self.u8(1),
            Cmd::Stop => self.u8(2),
            Cmd::Quit => self.u8(3),
            Cmd::QueryYankOob => self.u8(4),
            Cmd::MigratePauseOob => self.u8(5),
            Cmd::QueryStatusOob => self.u8(6),
            Cmd::GuestPing => self.u8(7),
            Cmd::GuestShutdown(mode) => {
                self.u8(8);
                self.u8(match mode {
                    None => 0,
                    Some(false) => 1,
                    Some(true) => 2,
                });
            }
            Cmd::GuestSuspendRam => self.u8(9),
            Cmd::Raw {
                name,
                arguments,
                oob,
            } => {
                if arguments.is_some() {
                    return None;
                }
                self.u8(10);
                self.name(name)?;
                self.flag(*oob);
                self.flag(false);
            }
            Cmd::Json {
                name,
                arguments,
                oob,
            } => {
                self.u8(11);
                self.name(name)?;
                self.flag(*oob);
                match arguments {
                    None => self.u8(0),
                    Some(JsonArguments::Bytes(b)) => {
                        self.u8(1);
                        self.bytes(b)?;
                    }
                    Some(JsonArguments::Tree(..)) => return None,
                    Some(JsonArguments::Duplicate) => self.u8(3),
                }
            }
        }
        Some(())
    }

    fn op(&mut self, op: &Op) -> Option<()> {
        match op {
            Op::Feed(pieces) => {
                self.u8(0);
                self.u8(u8::try_from(pieces.len()).ok()?);
                for piece in pieces {
                    self.piece(piece)?;
                }
            }
            Op::Execute(cmd) => {
                self.u8(1);
                self.command(cmd)?;
            }
            Op::Sync(v) => {
                self.u8(2);
                self.u64(*v);
            }
            Op::Advance(ms) => {
                self.u8(3);
                self.u16(*ms);
            }
            Op::Timeout => self.u8(4),
            Op::WaitDeadline => self.u8(5),
            Op::Transmit(n) => {
                self.u8(6);
                self.u16(*n);
            }
            Op::Cancel(k) => {
                self.u8(7);
                self.u8(*k);
            }
            Op::SetDeadline(k, ms) => {
                self.u8(8);
                self.u8(*k);
                self.flag(ms.is_some());
                self.u16(ms.unwrap_or(0));
            }
            Op::Eof => self.u8(9),
            Op::Close => self.u8(10),
        }
        Some(())
    }
}
