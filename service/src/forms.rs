//! XEP-0004 data forms: the `<x xmlns='jabber:x:data'/>` element as a value,
//! and the checks a form-processing entity owes its users.
//!
//! A service builds a [`Form`] of kind [`FormKind::Form`] to ask for data
//! (registration, an ad-hoc command stage, a question to the user), and
//! parses what comes back with [`Form::parse`]. [`Form::validate_submission`]
//! then checks the submission against the form that was sent, the way
//! XEP-0004 (Data Validation) puts it on the processing side: required fields present,
//! choices among the offered options, booleans and JIDs well-formed. What it
//! returns is a flat list of `(var, value)` pairs in the order of the form,
//! ready to be stored or acted on.
//!
//! Errors are [`FormError`] values that turn into stanza errors: a form that
//! does not follow the XEP-0004 syntax is `bad-request`, data that does not
//! satisfy the form is `not-acceptable` (XEP-0004, Data Validation), and the error text
//! names the field by its label, which is what the user saw.

use std::fmt;

use switchboard_jid::Jid;
use switchboard_xml::{ns, Element};

use crate::stanza::{ErrorType, StanzaError};

/// The name of the hidden field that says which standard vocabulary a form
/// uses (XEP-0068).
pub const FORM_TYPE: &str = "FORM_TYPE";

/// The `type` of a form (XEP-0004 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FormKind {
    /// The processing entity asks for data.
    Form,
    /// The submitting entity provides data.
    Submit,
    /// Data returned by the processing entity (results, reports).
    Result,
    /// The submitting entity declined to fill in the form.
    Cancel,
}

impl FormKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FormKind::Form => "form",
            FormKind::Submit => "submit",
            FormKind::Result => "result",
            FormKind::Cancel => "cancel",
        }
    }

    pub fn parse(s: &str) -> Option<FormKind> {
        Some(match s {
            "form" => FormKind::Form,
            "submit" => FormKind::Submit,
            "result" => FormKind::Result,
            "cancel" => FormKind::Cancel,
            _ => return None,
        })
    }
}

/// The `type` of a field (XEP-0004 §3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldKind {
    Boolean,
    Fixed,
    Hidden,
    JidMulti,
    JidSingle,
    ListMulti,
    ListSingle,
    TextMulti,
    TextPrivate,
    TextSingle,
}

impl FieldKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FieldKind::Boolean => "boolean",
            FieldKind::Fixed => "fixed",
            FieldKind::Hidden => "hidden",
            FieldKind::JidMulti => "jid-multi",
            FieldKind::JidSingle => "jid-single",
            FieldKind::ListMulti => "list-multi",
            FieldKind::ListSingle => "list-single",
            FieldKind::TextMulti => "text-multi",
            FieldKind::TextPrivate => "text-private",
            FieldKind::TextSingle => "text-single",
        }
    }

    /// Parses a field type. XEP-0004 makes `text-single` the type to assume
    /// for a type one does not understand, so this never fails.
    pub fn parse(s: &str) -> FieldKind {
        match s {
            "boolean" => FieldKind::Boolean,
            "fixed" => FieldKind::Fixed,
            "hidden" => FieldKind::Hidden,
            "jid-multi" => FieldKind::JidMulti,
            "jid-single" => FieldKind::JidSingle,
            "list-multi" => FieldKind::ListMulti,
            "list-single" => FieldKind::ListSingle,
            "text-multi" => FieldKind::TextMulti,
            "text-private" => FieldKind::TextPrivate,
            _ => FieldKind::TextSingle,
        }
    }

    /// Whether the field may carry more than one `<value/>`.
    pub fn is_multi(self) -> bool {
        matches!(
            self,
            FieldKind::JidMulti | FieldKind::ListMulti | FieldKind::TextMulti | FieldKind::Hidden
        )
    }
}

/// One `<field/>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The field's name; may be empty only for `fixed` fields.
    pub var: String,
    pub kind: FieldKind,
    pub label: Option<String>,
    pub desc: Option<String>,
    pub required: bool,
    pub values: Vec<String>,
    /// `(label, value)` of each `<option/>` of a list field. An empty label
    /// is written without a `label` attribute.
    pub options: Vec<(String, String)>,
}

impl Field {
    pub fn new(var: impl Into<String>, kind: FieldKind) -> Field {
        Field {
            var: var.into(),
            kind,
            label: None,
            desc: None,
            required: false,
            values: Vec::new(),
            options: Vec::new(),
        }
    }

    /// A `fixed` field: a line of text shown to the user, with no var.
    pub fn fixed(text: impl Into<String>) -> Field {
        Field::new("", FieldKind::Fixed).with_value(text)
    }

    /// The hidden `FORM_TYPE` field naming the form's vocabulary.
    pub fn form_type(uri: impl Into<String>) -> Field {
        Field::new(FORM_TYPE, FieldKind::Hidden).with_value(uri)
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Field {
        self.label = Some(label.into());
        self
    }

    pub fn with_desc(mut self, desc: impl Into<String>) -> Field {
        self.desc = Some(desc.into());
        self
    }

    pub fn required(mut self) -> Field {
        self.required = true;
        self
    }

    pub fn with_value(mut self, value: impl Into<String>) -> Field {
        self.values.push(value.into());
        self
    }

    pub fn with_option(mut self, label: impl Into<String>, value: impl Into<String>) -> Field {
        self.options.push((label.into(), value.into()));
        self
    }

    /// The first value, if any.
    pub fn value(&self) -> Option<&str> {
        self.values.first().map(String::as_str)
    }

    /// What to call the field in a message to the user: its label, or its
    /// var when it has none.
    pub fn display_name(&self) -> &str {
        match &self.label {
            Some(l) if !l.trim().is_empty() => l,
            _ => &self.var,
        }
    }

    /// The `<field/>` element. `with_type` is false inside result `<item/>`s,
    /// whose types are given once in `<reported/>`.
    fn to_element(&self, with_type: bool) -> Element {
        let mut e = Element::new("field", ns::DATA_FORMS);
        if !self.var.is_empty() {
            e.set_attr("var", self.var.clone());
        }
        if with_type {
            e.set_attr("type", self.kind.as_str());
        }
        if let Some(label) = &self.label {
            e.set_attr("label", label.clone());
        }
        if let Some(desc) = &self.desc {
            e.append_child(Element::new("desc", ns::DATA_FORMS).with_text(desc.clone()));
        }
        if self.required {
            e.append_child(Element::new("required", ns::DATA_FORMS));
        }
        for v in &self.values {
            e.append_child(Element::new("value", ns::DATA_FORMS).with_text(v.clone()));
        }
        for (label, value) in &self.options {
            let mut o = Element::new("option", ns::DATA_FORMS);
            if !label.is_empty() {
                o.set_attr("label", label.clone());
            }
            o.append_child(Element::new("value", ns::DATA_FORMS).with_text(value.clone()));
            e.append_child(o);
        }
        e
    }

    fn parse(el: &Element) -> Result<Field, FormError> {
        let kind = el
            .attr("type")
            .map_or(FieldKind::TextSingle, FieldKind::parse);
        let var = el.attr("var").unwrap_or_default().to_owned();
        if var.is_empty() && kind != FieldKind::Fixed {
            return Err(FormError::Malformed(format!(
                "a field of type '{}' has no 'var' attribute",
                kind.as_str()
            )));
        }
        let mut field = Field::new(var, kind);
        field.label = el.attr("label").map(str::to_owned);
        field.desc = el.child_text("desc", ns::DATA_FORMS);
        field.required = el.get_child("required", ns::DATA_FORMS).is_some();
        for child in el.elements().filter(|c| c.ns == ns::DATA_FORMS) {
            match child.name.as_str() {
                "value" => field.values.push(child.text()),
                "option" => {
                    let mut values = child.elements().filter(|v| v.is("value", ns::DATA_FORMS));
                    match (values.next(), values.next()) {
                        (Some(v), None) => field
                            .options
                            .push((child.attr("label").unwrap_or_default().to_owned(), v.text())),
                        _ => {
                            return Err(FormError::Malformed(format!(
                                "an option of the field '{}' does not hold exactly one value",
                                field.display_name()
                            )))
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(field)
    }
}

/// A data form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Form {
    pub kind: FormKind,
    pub title: Option<String>,
    pub instructions: Vec<String>,
    pub fields: Vec<Field>,
    /// The table header of a multi-item result (XEP-0004 §3.4); empty
    /// otherwise.
    pub reported: Vec<Field>,
    /// The rows of a multi-item result, each a list of fields.
    pub items: Vec<Vec<Field>>,
}

impl Form {
    pub fn new(kind: FormKind) -> Form {
        Form {
            kind,
            title: None,
            instructions: Vec::new(),
            fields: Vec::new(),
            reported: Vec::new(),
            items: Vec::new(),
        }
    }

    pub fn with_title(mut self, title: impl Into<String>) -> Form {
        self.title = Some(title.into());
        self
    }

    pub fn with_instructions(mut self, text: impl Into<String>) -> Form {
        self.instructions.push(text.into());
        self
    }

    pub fn with_field(mut self, field: Field) -> Form {
        self.fields.push(field);
        self
    }

    /// The field with this var.
    pub fn field(&self, var: &str) -> Option<&Field> {
        self.fields.iter().find(|f| f.var == var && !var.is_empty())
    }

    /// The first value of a field.
    pub fn value(&self, var: &str) -> Option<&str> {
        self.field(var).and_then(Field::value)
    }

    /// All values of a field (none if the field is absent).
    pub fn values(&self, var: &str) -> &[String] {
        self.field(var).map_or(&[], |f| f.values.as_slice())
    }

    /// The value of the hidden `FORM_TYPE` field, if the form has one.
    pub fn form_type(&self) -> Option<&str> {
        self.field(FORM_TYPE)
            .filter(|f| f.kind == FieldKind::Hidden)
            .and_then(Field::value)
    }

    /// The `<x xmlns='jabber:x:data'/>` element.
    pub fn to_element(&self) -> Element {
        let mut x = Element::new("x", ns::DATA_FORMS).with_attr("type", self.kind.as_str());
        if let Some(t) = &self.title {
            x.append_child(Element::new("title", ns::DATA_FORMS).with_text(t.clone()));
        }
        for i in &self.instructions {
            x.append_child(Element::new("instructions", ns::DATA_FORMS).with_text(i.clone()));
        }
        for f in &self.fields {
            x.append_child(f.to_element(true));
        }
        if !self.reported.is_empty() {
            let mut r = Element::new("reported", ns::DATA_FORMS);
            for f in &self.reported {
                r.append_child(f.to_element(true));
            }
            x.append_child(r);
        }
        for item in &self.items {
            let mut i = Element::new("item", ns::DATA_FORMS);
            for f in item {
                i.append_child(f.to_element(false));
            }
            x.append_child(i);
        }
        x
    }

    /// Parses an `<x xmlns='jabber:x:data'/>` element. Syntax errors (no or
    /// unknown form type, a field without var, an option without exactly
    /// one value, a var used twice) are [`FormError::Malformed`].
    pub fn parse(el: &Element) -> Result<Form, FormError> {
        if !el.is("x", ns::DATA_FORMS) {
            return Err(FormError::Malformed(format!(
                "expected a data form, found <{}/> in '{}'",
                el.name, el.ns
            )));
        }
        let kind = match el.attr("type") {
            Some(t) => FormKind::parse(t)
                .ok_or_else(|| FormError::Malformed(format!("'{t}' is not a data form type")))?,
            None => return Err(FormError::Malformed("the data form has no type".into())),
        };
        let mut form = Form::new(kind);
        for child in el.elements().filter(|c| c.ns == ns::DATA_FORMS) {
            match child.name.as_str() {
                "title" => form.title = Some(child.text()),
                "instructions" => form.instructions.push(child.text()),
                "field" => {
                    let field = Field::parse(child)?;
                    if !field.var.is_empty() && form.field(&field.var).is_some() {
                        return Err(FormError::Malformed(format!(
                            "the field '{}' appears twice",
                            field.var
                        )));
                    }
                    form.fields.push(field);
                }
                "reported" => {
                    for f in child.elements().filter(|f| f.is("field", ns::DATA_FORMS)) {
                        form.reported.push(Field::parse(f)?);
                    }
                }
                "item" => {
                    let mut row = Vec::new();
                    for f in child.elements().filter(|f| f.is("field", ns::DATA_FORMS)) {
                        row.push(Field::parse(f)?);
                    }
                    form.items.push(row);
                }
                _ => {}
            }
        }
        Ok(form)
    }

    /// Checks a submission against this form (the one that was sent) and
    /// returns the submitted data as `(var, value)` pairs, in the order of
    /// this form's fields.
    ///
    /// - Fields the submission has but this form does not are ignored
    ///   (XEP-0004 requires it); `fixed` fields carry no data.
    /// - `hidden` fields come back with the value this form gave them, not
    ///   the submitted one: the submitter is not supposed to change them,
    ///   and trusting it to would let it. `FORM_TYPE` must match when both
    ///   forms state one, and is not returned.
    /// - A field absent from the submission takes this form's value(s)
    ///   (the default the form offered); one sent back empty stays empty.
    /// - A required field must have a value that is not blank.
    /// - Fields other than `*-multi` take at most one value.
    /// - `boolean` becomes `1` or `0` (`true`/`false` are accepted); an
    ///   absent boolean is `0` unless the form gave it a default.
    /// - `list-single` and `list-multi` values must be among the options
    ///   (when the form offers any).
    /// - `jid-single` and `jid-multi` values must be valid JIDs and come
    ///   back normalized; duplicate JIDs are dropped, as XEP-0004 says.
    /// - `list-multi` and `jid-multi` give one pair per value; the lines of
    ///   a `text-multi` are joined with `\n` into one value.
    /// - Optional fields left empty give no pair.
    pub fn validate_submission(
        &self,
        submitted: &Form,
    ) -> Result<Vec<(String, String)>, FormError> {
        if submitted.kind != FormKind::Submit {
            return Err(FormError::Malformed(format!(
                "expected a submitted form (type 'submit'), got type '{}'",
                submitted.kind.as_str()
            )));
        }
        if let (Some(ours), Some(theirs)) = (self.form_type(), submitted.form_type()) {
            if ours != theirs {
                return Err(FormError::Invalid {
                    var: FORM_TYPE.into(),
                    message: format!("the form answers '{theirs}', but '{ours}' was asked"),
                });
            }
        }
        let mut out = Vec::new();
        for field in &self.fields {
            if field.kind == FieldKind::Fixed || field.var.is_empty() {
                continue;
            }
            if field.kind == FieldKind::Hidden {
                if field.var != FORM_TYPE {
                    out.extend(field.values.iter().map(|v| (field.var.clone(), v.clone())));
                }
                continue;
            }
            // A field the submission leaves out entirely keeps this form's
            // value: a client that cannot show the field (a legacy
            // registration client, a text reply) accepts the default. A
            // field sent back empty was cleared on purpose and stays empty.
            let given: Vec<&str> = match submitted.field(&field.var) {
                Some(f) => f.values.iter().map(String::as_str).collect(),
                None => field.values.iter().map(String::as_str).collect(),
            };
            let name = field.display_name();
            let invalid = |message: String| FormError::Invalid {
                var: field.var.clone(),
                message,
            };
            let blank = given.iter().all(|v| v.trim().is_empty());
            if blank && field.required {
                return Err(invalid(format!("'{name}' is required")));
            }
            if given.len() > 1 && !field.kind.is_multi() {
                return Err(invalid(format!("'{name}' takes a single value")));
            }
            match field.kind {
                FieldKind::Boolean => {
                    let raw = given.first().map_or("0", |v| v.trim());
                    let value = match raw {
                        "1" | "true" => "1",
                        "0" | "false" | "" => "0",
                        _ => return Err(invalid(format!("'{name}' must be true or false"))),
                    };
                    out.push((field.var.clone(), value.to_owned()));
                }
                FieldKind::JidSingle | FieldKind::JidMulti => {
                    let mut seen: Vec<Jid> = Vec::new();
                    for v in given.iter().map(|v| v.trim()).filter(|v| !v.is_empty()) {
                        let jid = Jid::parse(v).map_err(|e| {
                            invalid(format!("'{name}': '{v}' is not a valid address ({e})"))
                        })?;
                        if !seen.contains(&jid) {
                            seen.push(jid);
                        }
                    }
                    out.extend(seen.iter().map(|j| (field.var.clone(), j.to_string())));
                }
                FieldKind::ListSingle | FieldKind::ListMulti => {
                    for v in given.iter().filter(|v| !v.is_empty()) {
                        if !field.options.is_empty() && !field.options.iter().any(|(_, o)| o == v) {
                            return Err(invalid(format!(
                                "'{v}' is not one of the choices for '{name}'"
                            )));
                        }
                        out.push((field.var.clone(), (*v).to_owned()));
                    }
                }
                FieldKind::TextMulti => {
                    if !blank {
                        out.push((field.var.clone(), given.join("\n")));
                    }
                }
                FieldKind::TextSingle | FieldKind::TextPrivate => {
                    // Text is kept as typed: leading or trailing spaces can
                    // be part of a password.
                    if let Some(v) = given.first().filter(|v| !v.is_empty()) {
                        out.push((field.var.clone(), (*v).to_owned()));
                    }
                }
                FieldKind::Fixed | FieldKind::Hidden => unreachable!("handled above"),
            }
        }
        Ok(out)
    }

    /// A submission of this form with the given values, one `<value/>` per
    /// pair (pairs with the same var add values). Used to turn answers that
    /// did not come as a form (legacy registration fields, a plain-text
    /// reply) into something [`Form::validate_submission`] checks.
    pub fn submission<'a>(&self, pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Form {
        let mut out = Form::new(FormKind::Submit);
        if let Some(t) = self.form_type() {
            out.fields.push(Field::form_type(t));
        }
        for (var, value) in pairs {
            match out.fields.iter_mut().find(|f| f.var == var) {
                Some(f) => f.values.push(value.to_owned()),
                None => {
                    let kind = self.field(var).map_or(FieldKind::TextSingle, |f| f.kind);
                    out.fields.push(Field::new(var, kind).with_value(value));
                }
            }
        }
        out
    }
}

/// What is wrong with a form or a submission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormError {
    /// Not a well-formed data form (or not of the expected type):
    /// `bad-request`.
    Malformed(String),
    /// Well-formed, but the data does not satisfy the form:
    /// `not-acceptable`. `message` names the field by its label.
    Invalid { var: String, message: String },
}

impl FormError {
    /// The stanza error to send back.
    pub fn to_stanza_error(&self) -> StanzaError {
        match self {
            FormError::Malformed(m) => StanzaError::bad_request().with_text(m.clone()),
            FormError::Invalid { message, .. } => {
                StanzaError::new("not-acceptable", ErrorType::Modify).with_text(message.clone())
            }
        }
    }
}

impl From<FormError> for StanzaError {
    fn from(e: FormError) -> StanzaError {
        e.to_stanza_error()
    }
}

impl fmt::Display for FormError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FormError::Malformed(m) => f.write_str(m),
            FormError::Invalid { message, .. } => f.write_str(message),
        }
    }
}

impl std::error::Error for FormError {}

#[cfg(test)]
mod tests {
    use super::*;
    use switchboard_xml::{parse_document, Limits};

    fn xml(s: &str) -> Element {
        parse_document(s.as_bytes(), Limits::default()).unwrap()
    }

    fn login_form() -> Form {
        Form::new(FormKind::Form)
            .with_title("IRC registration")
            .with_instructions("Choose a nickname.")
            .with_field(Field::form_type(ns::REGISTER))
            .with_field(Field::fixed("Your account"))
            .with_field(
                Field::new("username", FieldKind::TextSingle)
                    .with_label("Nickname")
                    .required(),
            )
            .with_field(
                Field::new("password", FieldKind::TextPrivate)
                    .with_label("Password")
                    .with_desc("NickServ password"),
            )
            .with_field(
                Field::new("network", FieldKind::ListSingle)
                    .with_label("Network")
                    .with_option("Libera", "libera")
                    .with_option("OFTC", "oftc")
                    .with_value("libera"),
            )
            .with_field(Field::new("autojoin", FieldKind::Boolean).with_label("Join on sign-on"))
            .with_field(Field::new("owner", FieldKind::JidSingle).with_label("Owner"))
            .with_field(Field::new("channels", FieldKind::ListMulti).with_label("Channels"))
            .with_field(Field::new("notes", FieldKind::TextMulti))
    }

    fn submit(fields: &[(&str, &[&str])]) -> Form {
        let mut f = Form::new(FormKind::Submit);
        for (var, values) in fields {
            let mut field = Field::new(*var, FieldKind::TextSingle);
            field.values = values.iter().map(|v| v.to_string()).collect();
            f.fields.push(field);
        }
        f
    }

    #[test]
    fn serializes_the_xep_0004_shape() {
        let form = Form::new(FormKind::Form)
            .with_title("T")
            .with_instructions("I1")
            .with_instructions("I2")
            .with_field(Field::form_type("urn:x"))
            .with_field(
                Field::new("net", FieldKind::ListSingle)
                    .with_label("Network")
                    .with_desc("Where")
                    .required()
                    .with_value("a")
                    .with_option("A", "a")
                    .with_option("", "b"),
            );
        assert_eq!(
            form.to_element().to_xml_string(),
            "<x xmlns=\"jabber:x:data\" type=\"form\"><title>T</title>\
             <instructions>I1</instructions><instructions>I2</instructions>\
             <field var=\"FORM_TYPE\" type=\"hidden\"><value>urn:x</value></field>\
             <field var=\"net\" type=\"list-single\" label=\"Network\"><desc>Where</desc>\
             <required/><value>a</value><option label=\"A\"><value>a</value></option>\
             <option><value>b</value></option></field></x>"
        );
    }

    #[test]
    fn parse_round_trips_every_field_type() {
        let kinds = [
            FieldKind::Boolean,
            FieldKind::Fixed,
            FieldKind::Hidden,
            FieldKind::JidMulti,
            FieldKind::JidSingle,
            FieldKind::ListMulti,
            FieldKind::ListSingle,
            FieldKind::TextMulti,
            FieldKind::TextPrivate,
            FieldKind::TextSingle,
        ];
        let mut form = Form::new(FormKind::Result).with_title("All");
        for (i, k) in kinds.iter().enumerate() {
            form.fields.push(
                Field::new(format!("f{i}"), *k)
                    .with_label(k.as_str())
                    .with_value("v"),
            );
            assert_eq!(FieldKind::parse(k.as_str()), *k);
        }
        form.reported
            .push(Field::new("jid", FieldKind::JidSingle).with_label("JID"));
        form.items.push(vec![
            Field::new("jid", FieldKind::TextSingle).with_value("a@b")
        ]);
        let text = form.to_element().to_xml_string();
        assert!(text.contains("<item><field var=\"jid\"><value>a@b</value></field></item>"));
        assert_eq!(Form::parse(&xml(&text)).unwrap(), form);
    }

    #[test]
    fn parse_defaults_and_rejects_what_xep_0004_forbids() {
        let f = Form::parse(&xml(
            "<x xmlns='jabber:x:data' type='submit'><field var='a'><value>1</value></field>\
             <field var='b' type='something-new'/></x>",
        ))
        .unwrap();
        assert_eq!(f.fields[0].kind, FieldKind::TextSingle);
        assert_eq!(
            f.fields[1].kind,
            FieldKind::TextSingle,
            "unknown types are text-single"
        );
        assert_eq!(f.value("a"), Some("1"));
        assert_eq!(f.values("missing"), &[] as &[String]);

        for bad in [
            "<x xmlns='jabber:x:data'/>",
            "<x xmlns='jabber:x:data' type='maybe'/>",
            "<x xmlns='jabber:x:data' type='form'><field type='text-single'/></x>",
            "<x xmlns='jabber:x:data' type='form'><field var='a'/><field var='a'/></x>",
            "<x xmlns='jabber:x:data' type='form'><field var='a' type='list-single'>\
             <option><value>1</value><value>2</value></option></field></x>",
            "<x xmlns='urn:other' type='form'/>",
        ] {
            let err = Form::parse(&xml(bad)).unwrap_err();
            assert!(matches!(err, FormError::Malformed(_)), "{bad}");
            assert_eq!(err.to_stanza_error().condition, "bad-request");
        }
    }

    #[test]
    fn a_good_submission_comes_back_in_form_order() {
        let form = login_form();
        let sub = submit(&[
            ("channels", &["#rust", "#xmpp"]),
            ("owner", &["Romeo@Montague.LIT/Orchard"]),
            ("username", &["romeo"]),
            ("password", &[" s3cret "]),
            ("network", &["oftc"]),
            ("autojoin", &["true"]),
            ("notes", &["line 1", "line 2"]),
            ("x-unknown", &["ignored"]),
            (FORM_TYPE, &["jabber:iq:register"]),
        ]);
        let pairs = form.validate_submission(&sub).unwrap();
        let expect: Vec<(String, String)> = [
            ("username", "romeo"),
            ("password", " s3cret "),
            ("network", "oftc"),
            ("autojoin", "1"),
            ("owner", "romeo@montague.lit/Orchard"),
            ("channels", "#rust"),
            ("channels", "#xmpp"),
            ("notes", "line 1\nline 2"),
        ]
        .iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
        assert_eq!(pairs, expect);
    }

    #[test]
    fn optional_fields_may_be_left_out() {
        let pairs = login_form()
            .validate_submission(&submit(&[("username", &["romeo"])]))
            .unwrap();
        assert_eq!(
            pairs,
            vec![
                ("username".to_string(), "romeo".to_string()),
                ("network".to_string(), "libera".to_string()),
                ("autojoin".to_string(), "0".to_string()),
            ],
            "an absent field takes the form's default"
        );
        let cleared = login_form()
            .validate_submission(&submit(&[("username", &["romeo"]), ("network", &[])]))
            .unwrap();
        assert!(
            !cleared.iter().any(|(k, _)| k == "network"),
            "a field sent back empty stays empty"
        );
    }

    fn invalid(form: &Form, sub: &Form) -> String {
        let err = form.validate_submission(sub).unwrap_err();
        let se = err.to_stanza_error();
        assert_eq!(se.condition, "not-acceptable", "{err:?}");
        assert_eq!(se.kind, ErrorType::Modify);
        se.text.unwrap()
    }

    #[test]
    fn invalid_submissions_name_the_field_by_its_label() {
        let form = login_form();
        assert_eq!(
            invalid(&form, &submit(&[("password", &["x"])])),
            "'Nickname' is required"
        );
        assert_eq!(
            invalid(&form, &submit(&[("username", &["   "])])),
            "'Nickname' is required",
            "blank is not a value"
        );
        assert_eq!(
            invalid(
                &form,
                &submit(&[("username", &["a"]), ("network", &["efnet"])])
            ),
            "'efnet' is not one of the choices for 'Network'"
        );
        assert_eq!(
            invalid(
                &form,
                &submit(&[("username", &["a"]), ("autojoin", &["yes"])])
            ),
            "'Join on sign-on' must be true or false"
        );
        assert!(
            invalid(&form, &submit(&[("username", &["a"]), ("owner", &["@x"])]))
                .starts_with("'Owner': '@x' is not a valid address")
        );
        assert_eq!(
            invalid(&form, &submit(&[("username", &["a", "b"])])),
            "'Nickname' takes a single value"
        );
        // No label: the var is used.
        let bare = Form::new(FormKind::Form)
            .with_field(Field::new("nick", FieldKind::TextSingle).required());
        assert_eq!(invalid(&bare, &submit(&[])), "'nick' is required");
    }

    #[test]
    fn form_type_and_hidden_fields_are_the_processors_own() {
        let form = Form::new(FormKind::Form)
            .with_field(Field::form_type("urn:a"))
            .with_field(Field::new("token", FieldKind::Hidden).with_value("t1"));
        let mut sub = submit(&[("token", &["forged"])]);
        assert_eq!(
            form.validate_submission(&sub).unwrap(),
            vec![("token".to_string(), "t1".to_string())]
        );
        sub.fields.push(Field::form_type("urn:b"));
        assert_eq!(
            invalid(&form, &sub),
            "the form answers 'urn:b', but 'urn:a' was asked"
        );
    }

    #[test]
    fn only_a_submit_form_is_a_submission() {
        let mut sub = submit(&[("username", &["a"])]);
        sub.kind = FormKind::Cancel;
        let err = login_form().validate_submission(&sub).unwrap_err();
        assert_eq!(err.to_stanza_error().condition, "bad-request");
    }

    #[test]
    fn duplicate_jids_count_once() {
        let form = Form::new(FormKind::Form).with_field(Field::new("who", FieldKind::JidMulti));
        let pairs = form
            .validate_submission(&submit(&[("who", &["a@b", "A@B", "c@d"])]))
            .unwrap();
        assert_eq!(
            pairs,
            vec![
                ("who".to_string(), "a@b".to_string()),
                ("who".to_string(), "c@d".to_string())
            ]
        );
    }

    #[test]
    fn submission_builds_a_checkable_form() {
        let form = login_form();
        let sub = form.submission([
            ("username", "romeo"),
            ("channels", "#a"),
            ("channels", "#b"),
        ]);
        assert_eq!(sub.kind, FormKind::Submit);
        assert_eq!(sub.form_type(), Some(ns::REGISTER));
        assert_eq!(
            sub.values("channels"),
            &["#a".to_string(), "#b".to_string()]
        );
        assert_eq!(sub.field("channels").unwrap().kind, FieldKind::ListMulti);
        assert!(form.validate_submission(&sub).is_ok());
    }
}
