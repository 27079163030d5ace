//! The QAPI schema model: definitions read from parsed expressions, with `include`s
//! followed, struct bases and union bases resolved, and every definition tagged with the
//! file (QAPI module) it comes from.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use crate::history::Before;
use crate::parser::{self, Doc, Value};

/// An `if` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cond {
    /// A configuration symbol (`CONFIG_SPICE`, `TARGET_S390X`, ...).
    Name(String),
    /// All of them.
    All(Vec<Cond>),
    /// Any of them.
    Any(Vec<Cond>),
    /// Not this one.
    Not(Box<Cond>),
}

impl Cond {
    fn from_value(value: &Value) -> Result<Cond, String> {
        match value {
            Value::Str(name) => Ok(Cond::Name(name.clone())),
            Value::Dict(members) if members.len() == 1 => {
                let (op, arg) = &members[0];
                let list = |arg: &Value| -> Result<Vec<Cond>, String> {
                    match arg {
                        Value::List(items) => items.iter().map(Cond::from_value).collect(),
                        _ => Err(format!("'{op}' needs a list")),
                    }
                };
                match op.as_str() {
                    "all" => Ok(Cond::All(list(arg)?)),
                    "any" => Ok(Cond::Any(list(arg)?)),
                    "not" => Ok(Cond::Not(Box::new(Cond::from_value(arg)?))),
                    _ => Err(format!("unknown condition operator '{op}'")),
                }
            }
            _ => Err("bad 'if' condition".into()),
        }
    }

    /// Whether the condition holds when exactly the symbols in `defined` are set.
    pub fn eval(&self, defined: &dyn Fn(&str) -> bool) -> bool {
        match self {
            Cond::Name(name) => defined(name),
            Cond::All(all) => all.iter().all(|c| c.eval(defined)),
            Cond::Any(any) => any.iter().any(|c| c.eval(defined)),
            Cond::Not(not) => !not.eval(defined),
        }
    }
}

impl std::fmt::Display for Cond {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let join = |f: &mut std::fmt::Formatter<'_>, items: &[Cond], op: &str| {
            f.write_str("(")?;
            for (i, c) in items.iter().enumerate() {
                if i > 0 {
                    write!(f, " {op} ")?;
                }
                write!(f, "{c}")?;
            }
            f.write_str(")")
        };
        match self {
            Cond::Name(name) => f.write_str(name),
            Cond::All(items) => join(f, items, "and"),
            Cond::Any(items) => join(f, items, "or"),
            Cond::Not(c) => write!(f, "not {c}"),
        }
    }
}

/// A reference to a type: a name (built-in or defined) or a list of one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum TypeRef {
    /// `'name'`
    Named(String),
    /// `['name']`
    List(String),
}

impl TypeRef {
    fn from_value(value: &Value) -> Result<TypeRef, String> {
        match value {
            Value::Str(name) => Ok(TypeRef::Named(name.clone())),
            Value::List(items) if items.len() == 1 => match &items[0] {
                Value::Str(name) => Ok(TypeRef::List(name.clone())),
                _ => Err("list type must name a type".into()),
            },
            _ => Err("bad type reference".into()),
        }
    }

    /// The element or type name.
    pub fn name(&self) -> &str {
        match self {
            TypeRef::Named(name) | TypeRef::List(name) => name,
        }
    }
}

/// A special feature (`deprecated`, `unstable`) or any other named feature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Feature {
    /// The feature's name.
    pub name: String,
    /// Its condition.
    pub cond: Option<Cond>,
}

/// A member of a struct, union base, command's arguments or event's data.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    /// The wire name (without the `*` of optional members).
    pub name: String,
    /// Its type.
    pub ty: TypeRef,
    /// Whether it may be absent.
    pub optional: bool,
    /// Its condition.
    pub cond: Option<Cond>,
    /// Its features.
    pub features: Vec<Feature>,
    /// Its documentation.
    pub doc: String,
    /// How it looked in the older schema, when that differs (see [`crate::history`]).
    pub before: Option<Before>,
}

impl Member {
    /// Whether the generated Rust field is an `Option`: optional in the schema, or
    /// required now but absent from an older release's replies.
    pub fn optional_in_rust(&self) -> bool {
        self.optional || self.before.as_ref().is_some_and(|b| b.relaxed)
    }
}

/// An enumeration value.
#[derive(Debug, Clone, PartialEq)]
pub struct EnumValue {
    /// The wire value.
    pub name: String,
    /// Its condition.
    pub cond: Option<Cond>,
    /// Its features.
    pub features: Vec<Feature>,
    /// Its documentation.
    pub doc: String,
    /// The older release whose schema lacks it (see [`crate::history`]).
    pub absent_in: Option<String>,
}

/// A union branch or alternate alternative.
#[derive(Debug, Clone, PartialEq)]
pub struct Branch {
    /// The discriminator value (union) or the alternative's name (alternate).
    pub name: String,
    /// The branch's type.
    pub ty: TypeRef,
    /// Its condition.
    pub cond: Option<Cond>,
    /// Its documentation.
    pub doc: String,
}

/// Command arguments or event data.
#[derive(Debug, Clone, PartialEq)]
pub enum Data {
    /// None at all.
    None,
    /// Members listed in place.
    Members(Vec<Member>),
    /// The members of a named struct or union (`boxed` or not, the wire is the same).
    Named(String),
}

/// What a definition is.
#[derive(Debug, Clone, PartialEq)]
pub enum Kind {
    /// `enum`
    Enum {
        /// The values.
        values: Vec<EnumValue>,
    },
    /// `struct`, with the base's members first.
    Struct {
        /// The base struct, if any (its members are already in `members`).
        base: Option<String>,
        /// All members, base first.
        members: Vec<Member>,
    },
    /// `union` (flat: a base with a discriminator member selecting the branch).
    Union {
        /// The base's members, discriminator included.
        base: Vec<Member>,
        /// The named base, if the base is not given in place.
        base_name: Option<String>,
        /// The discriminator member.
        discriminator: String,
        /// The enum type of the discriminator.
        tag_enum: String,
        /// The branches with members of their own.
        branches: Vec<Branch>,
    },
    /// `alternate`: one of several JSON types.
    Alternate {
        /// The alternatives.
        branches: Vec<Branch>,
    },
    /// `command`
    Command {
        /// Its arguments.
        data: Data,
        /// Its return type (`None`: returns `{}`).
        returns: Option<TypeRef>,
        /// `allow-oob`
        allow_oob: bool,
        /// `success-response` (false for a few guest-agent commands).
        success_response: bool,
    },
    /// `event`
    Event {
        /// Its data.
        data: Data,
    },
}

/// One named definition.
#[derive(Debug, Clone, PartialEq)]
pub struct Def {
    /// The QAPI name.
    pub name: String,
    /// The file it comes from, without `.json` (`block-core`, `qapi-schema` for qga).
    pub module: String,
    /// What it is.
    pub kind: Kind,
    /// Its condition.
    pub cond: Option<Cond>,
    /// Its features.
    pub features: Vec<Feature>,
    /// Its documentation.
    pub doc: Option<Doc>,
    /// For a command or event: the older release whose schema lacks it (see
    /// [`crate::history`]).
    pub absent_in: Option<String>,
}

/// A whole schema: every definition, in source order, by name.
#[derive(Debug, Default)]
pub struct Schema {
    /// The definitions in source order.
    pub defs: Vec<Def>,
    /// Index into `defs` by name.
    pub by_name: BTreeMap<String, usize>,
}

/// The built-in types of QAPI.
pub const BUILTINS: [&str; 16] = [
    "str", "int", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64", "size",
    "number", "bool", "null", "any", "QType",
];

impl Schema {
    /// Reads `path` and every file it includes.
    pub fn load(path: &Path) -> Result<Schema, String> {
        let mut raw = Vec::new();
        let mut seen = BTreeSet::new();
        read_file(path, &mut seen, &mut raw)?;
        let mut schema = Schema::default();
        for (module, expr) in &raw {
            schema.add(module, expr)?;
        }
        schema.resolve()?;
        Ok(schema)
    }

    /// Builds a schema from one file's text (tests).
    pub fn from_text(module: &str, text: &str) -> Result<Schema, String> {
        let exprs = parser::parse(text).map_err(|e| e.to_string())?;
        let mut schema = Schema::default();
        for expr in &exprs {
            schema.add(module, expr)?;
        }
        schema.resolve()?;
        Ok(schema)
    }

    /// The definition named `name`.
    pub fn get(&self, name: &str) -> Option<&Def> {
        self.by_name.get(name).map(|&i| &self.defs[i])
    }

    fn add(&mut self, module: &str, expr: &parser::Expr) -> Result<(), String> {
        let at = |e: String| format!("{module}.json line {}: {e}", expr.line);
        let v = &expr.value;
        if v.get("include").is_some() || v.get("pragma").is_some() {
            return Ok(());
        }
        let doc = expr.doc.clone();
        let doc_ref = doc.as_ref();
        let (meta, name) = ["enum", "struct", "union", "alternate", "command", "event"]
            .iter()
            .find_map(|meta| v.get(meta).and_then(Value::as_str).map(|n| (*meta, n)))
            .ok_or_else(|| at("unknown expression".into()))?;
        let cond = v.get("if").map(Cond::from_value).transpose().map_err(at)?;
        let def_features = features(v.get("features")).map_err(at)?;
        let kind = match meta {
            "enum" => {
                let Some(Value::List(items)) = v.get("data") else {
                    return Err(at("enum without data".into()));
                };
                let mut values = Vec::new();
                for item in items {
                    let (name, cond, features) = match item {
                        Value::Str(name) => (name.clone(), None, Vec::new()),
                        Value::Dict(_) => (
                            item.get("name")
                                .and_then(Value::as_str)
                                .ok_or_else(|| at("enum value without name".into()))?
                                .to_string(),
                            item.get("if")
                                .map(Cond::from_value)
                                .transpose()
                                .map_err(at)?,
                            features(item.get("features")).map_err(at)?,
                        ),
                        _ => return Err(at("bad enum value".into())),
                    };
                    let doc = member_doc(doc_ref, &name);
                    values.push(EnumValue {
                        name,
                        cond,
                        features,
                        doc,
                        absent_in: None,
                    });
                }
                Kind::Enum { values }
            }
            "struct" => Kind::Struct {
                base: v.get("base").and_then(Value::as_str).map(String::from),
                members: members(v.get("data"), doc_ref).map_err(at)?,
            },
            "union" => {
                let (base, base_name) = match v.get("base") {
                    Some(Value::Str(name)) => (Vec::new(), Some(name.clone())),
                    Some(dict @ Value::Dict(_)) => {
                        (members(Some(dict), doc_ref).map_err(at)?, None)
                    }
                    _ => return Err(at("union without base".into())),
                };
                let discriminator = v
                    .get("discriminator")
                    .and_then(Value::as_str)
                    .ok_or_else(|| at("union without discriminator".into()))?
                    .to_string();
                Kind::Union {
                    base,
                    base_name,
                    discriminator,
                    tag_enum: String::new(),
                    branches: branches(v.get("data"), doc_ref).map_err(at)?,
                }
            }
            "alternate" => Kind::Alternate {
                branches: branches(v.get("data"), doc_ref).map_err(at)?,
            },
            "command" | "event" => {
                let data = match v.get("data") {
                    None => Data::None,
                    Some(Value::Str(name)) => Data::Named(name.clone()),
                    Some(dict @ Value::Dict(_)) => {
                        Data::Members(members(Some(dict), doc_ref).map_err(at)?)
                    }
                    Some(_) => return Err(at("bad data".into())),
                };
                if meta == "event" {
                    Kind::Event { data }
                } else {
                    Kind::Command {
                        data,
                        returns: v
                            .get("returns")
                            .map(TypeRef::from_value)
                            .transpose()
                            .map_err(at)?,
                        allow_oob: v.get("allow-oob") == Some(&Value::Bool(true)),
                        success_response: v.get("success-response") != Some(&Value::Bool(false)),
                    }
                }
            }
            _ => unreachable!("meta comes from the list above"),
        };
        if self.by_name.contains_key(name) {
            return Err(at(format!("'{name}' defined twice")));
        }
        self.by_name.insert(name.to_string(), self.defs.len());
        self.defs.push(Def {
            name: name.to_string(),
            module: module.to_string(),
            kind,
            cond,
            features: def_features,
            doc,
            absent_in: None,
        });
        Ok(())
    }

    /// Puts struct bases' members in front of their own, and union bases' members into
    /// the union; finds each union's discriminator enum.
    fn resolve(&mut self) -> Result<(), String> {
        for i in 0..self.defs.len() {
            let mut def = self.defs[i].clone();
            match &mut def.kind {
                Kind::Struct {
                    base: Some(base),
                    members,
                } => {
                    let mut all = self.struct_members(base)?;
                    all.append(members);
                    *members = all;
                }
                Kind::Union {
                    base,
                    base_name,
                    discriminator,
                    tag_enum,
                    ..
                } => {
                    if let Some(name) = base_name {
                        *base = self.struct_members(name)?;
                    }
                    let tag = base
                        .iter()
                        .find(|m| m.name == *discriminator)
                        .ok_or_else(|| format!("{}: no discriminator member", def.name))?;
                    *tag_enum = tag.ty.name().to_string();
                }
                _ => {}
            }
            self.defs[i] = def;
        }
        Ok(())
    }

    /// All members of struct `name`, its base's first.
    pub fn struct_members(&self, name: &str) -> Result<Vec<Member>, String> {
        match self.get(name).map(|d| &d.kind) {
            Some(Kind::Struct { base, members }) => {
                // Bases are resolved in source order, and a base is always defined before
                // use in QEMU's schema; resolve again to be safe.
                let mut all = match base {
                    Some(base) => self.struct_members(base)?,
                    None => Vec::new(),
                };
                for m in members {
                    if !all.iter().any(|a| a.name == m.name) {
                        all.push(m.clone());
                    }
                }
                Ok(all)
            }
            _ => Err(format!("'{name}' is not a struct")),
        }
    }

    /// The members a command's arguments or an event's data consist of on the wire, if
    /// they are a struct's (unions and the like return `None`).
    pub fn data_members(&self, data: &Data) -> Option<Vec<Member>> {
        match data {
            Data::None => Some(Vec::new()),
            Data::Members(members) => Some(members.clone()),
            Data::Named(name) => self.struct_members(name).ok(),
        }
    }
}

fn read_file(
    path: &Path,
    seen: &mut BTreeSet<PathBuf>,
    out: &mut Vec<(String, parser::Expr)>,
) -> Result<(), String> {
    let canonical = path
        .canonicalize()
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if !seen.insert(canonical.clone()) {
        return Ok(());
    }
    let text =
        std::fs::read_to_string(&canonical).map_err(|e| format!("{}: {e}", path.display()))?;
    let exprs = parser::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let module = canonical
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("schema")
        .to_string();
    for expr in exprs {
        if let Some(Value::Str(include)) = expr.value.get("include") {
            let dir = canonical.parent().unwrap_or(Path::new("."));
            read_file(&dir.join(include), seen, out)?;
        } else {
            out.push((module.clone(), expr));
        }
    }
    Ok(())
}

fn features(value: Option<&Value>) -> Result<Vec<Feature>, String> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let Value::List(items) = value else {
        return Err("'features' must be a list".into());
    };
    items
        .iter()
        .map(|item| match item {
            Value::Str(name) => Ok(Feature {
                name: name.clone(),
                cond: None,
            }),
            Value::Dict(_) => Ok(Feature {
                name: item
                    .get("name")
                    .and_then(Value::as_str)
                    .ok_or("feature without name")?
                    .to_string(),
                cond: item.get("if").map(Cond::from_value).transpose()?,
            }),
            _ => Err("bad feature".into()),
        })
        .collect()
}

fn member_doc(doc: Option<&Doc>, name: &str) -> String {
    doc.and_then(|d| d.arg(name)).unwrap_or("").to_string()
}

fn members(value: Option<&Value>, doc: Option<&Doc>) -> Result<Vec<Member>, String> {
    let Some(value) = value else {
        return Ok(Vec::new());
    };
    let Value::Dict(entries) = value else {
        return Err("members must be a dict".into());
    };
    let mut out = Vec::new();
    for (key, value) in entries {
        let (optional, name) = match key.strip_prefix('*') {
            Some(name) => (true, name.to_string()),
            None => (false, key.clone()),
        };
        let (ty, cond, feats) = match value {
            Value::Dict(_) => (
                TypeRef::from_value(value.get("type").ok_or("member without type")?)?,
                value.get("if").map(Cond::from_value).transpose()?,
                features(value.get("features"))?,
            ),
            _ => (TypeRef::from_value(value)?, None, Vec::new()),
        };
        out.push(Member {
            doc: member_doc(doc, &name),
            name,
            ty,
            optional,
            cond,
            features: feats,
            before: None,
        });
    }
    Ok(out)
}

fn branches(value: Option<&Value>, doc: Option<&Doc>) -> Result<Vec<Branch>, String> {
    members(value, doc).map(|members| {
        members
            .into_iter()
            .map(|m| Branch {
                name: m.name,
                ty: m.ty,
                cond: m.cond,
                doc: m.doc,
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SNIPPET: &str = "
##
# @Base:
# @id: the id
##
{ 'struct': 'Base', 'data': { 'id': 'str' } }
##
# @Kind:
# @a: first
# @b: second
##
{ 'enum': 'Kind', 'data': [ 'a', { 'name': 'b', 'if': 'CONFIG_B', 'features': [ 'unstable' ] } ] }
{ 'struct': 'Child', 'base': 'Base', 'data': { '*n': 'int', 'l': ['str'] } }
{ 'union': 'U', 'base': { 'kind': 'Kind', '*x': 'bool' }, 'discriminator': 'kind',
  'data': { 'a': 'Child', 'b': { 'type': 'Base', 'if': { 'not': 'CONFIG_X' } } } }
{ 'alternate': 'Alt', 'data': { 'b': 'bool', 'c': 'Child' } }
{ 'command': 'do-it', 'data': 'Child', 'returns': ['Base'], 'allow-oob': true,
  'if': { 'all': [ 'CONFIG_A', { 'any': [ 'CONFIG_B', 'CONFIG_C' ] } ] } }
{ 'event': 'DONE', 'data': { 'k': 'Kind' }, 'features': [ 'deprecated' ] }
";

    #[test]
    fn model_of_a_snippet() {
        let schema = Schema::from_text("test", SNIPPET).unwrap();
        assert_eq!(schema.defs.len(), 7);
        let child = schema.get("Child").unwrap();
        let Kind::Struct { members, .. } = &child.kind else {
            panic!("not a struct")
        };
        let names: Vec<_> = members.iter().map(|m| m.name.as_str()).collect();
        assert_eq!(names, ["id", "n", "l"]);
        assert_eq!(members[0].doc, "the id");
        assert!(members[1].optional);
        assert_eq!(members[2].ty, TypeRef::List("str".into()));

        let Kind::Enum { values } = &schema.get("Kind").unwrap().kind else {
            panic!("not an enum")
        };
        assert_eq!(values[1].cond, Some(Cond::Name("CONFIG_B".into())));
        assert_eq!(values[1].features[0].name, "unstable");
        assert_eq!(values[1].doc, "second");

        let Kind::Union {
            tag_enum, branches, ..
        } = &schema.get("U").unwrap().kind
        else {
            panic!("not a union")
        };
        assert_eq!(tag_enum, "Kind");
        assert_eq!(
            branches[1].cond.as_ref().unwrap().to_string(),
            "not CONFIG_X"
        );

        let command = schema.get("do-it").unwrap();
        assert_eq!(
            command.cond.as_ref().unwrap().to_string(),
            "(CONFIG_A and (CONFIG_B or CONFIG_C))"
        );
        let defined = |name: &str| name == "CONFIG_A" || name == "CONFIG_C";
        assert!(command.cond.as_ref().unwrap().eval(&defined));
        let Kind::Command {
            data,
            returns,
            allow_oob,
            ..
        } = &command.kind
        else {
            panic!("not a command")
        };
        assert_eq!(*data, Data::Named("Child".into()));
        assert_eq!(schema.data_members(data).unwrap().len(), 3);
        assert_eq!(*returns, Some(TypeRef::List("Base".into())));
        assert!(allow_oob);
        assert_eq!(schema.get("DONE").unwrap().features[0].name, "deprecated");
    }

    #[test]
    fn rejects_duplicates_and_unknown_expressions() {
        assert!(Schema::from_text(
            "t",
            "{ 'enum': 'E', 'data': [] } { 'enum': 'E', 'data': [] }"
        )
        .is_err());
        assert!(Schema::from_text("t", "{ 'thing': 'E' }").is_err());
    }
}
