//! The execution plan the agent runs: one entry per step, with inputs resolved.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::DocumentError;
use crate::builtin::builtin;
use crate::content::field;
use crate::document::{Document, SchemaVersion, Step};
use crate::interpolate::interpolate;
use crate::parameter::ResolvedParameters;
use crate::plugin::{self, Platform, RUN_DOCUMENT, RUN_POWERSHELL_SCRIPT, RUN_SHELL_SCRIPT};

/// The script timeout when a step gives none, or gives one outside the allowed range (1 hour).
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 3600;
/// The shortest script timeout a step may ask for.
pub const MIN_TIMEOUT_SECONDS: u64 = 5;
/// The longest script timeout a step may ask for (48 hours).
pub const MAX_TIMEOUT_SECONDS: u64 = 172_800;

/// How deep `aws:runDocument` may nest documents.
const MAX_NESTING: usize = 3;

/// What the agent runs for one command: the steps in order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// One entry per document step.
    pub steps: Vec<PlanStep>,
}

/// One step as the agent runs and reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlanStep {
    /// The name results are reported under (`PluginName`): the step name, or for a 1.2
    /// document the plugin name such as `aws:runShellScript`.
    pub name: String,
    /// The plugin, such as `aws:runShellScript`.
    pub plugin: String,
    /// Whether the step's precondition holds on the node's platform (true without one).
    pub precondition_met: bool,
    /// What to do for the step.
    pub action: StepAction,
    /// `onFailure` from the inputs: stop after this step if it fails.
    pub on_failure: Option<OnFailure>,
    /// `onSuccess` from the inputs: stop after this step if it succeeds.
    pub on_success: Option<OnSuccess>,
    /// `finallyStep` from the inputs, honoured only on the last step: it runs even after a
    /// step stopped the document.
    pub finally_step: bool,
}

/// What the agent does for a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind")]
pub enum StepAction {
    /// Run these scripts in turn; the step's result merges their results.
    Run {
        /// The scripts, at least one.
        scripts: Vec<Script>,
    },
    /// Do not run the step and report it `Skipped`, which counts as success.
    Skip {
        /// Why the step is skipped, for its output.
        reason: String,
    },
    /// Do not run the step and report it `Failed`.
    Fail {
        /// Why the step cannot run, for its output.
        reason: String,
    },
}

/// The program that runs a script.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shell {
    /// `sh`, for `aws:runShellScript`.
    Sh,
    /// PowerShell (`powershell.exe` or `pwsh`), for `aws:runPowerShellScript`.
    PowerShell,
}

/// One script with its inputs resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Script {
    /// The program that runs it.
    pub shell: Shell,
    /// The `id` input (`0.aws:runShellScript` in AWS's 1.2 documents), empty if none.
    pub id: String,
    /// The lines of the script, StringList parameters spliced in as lines.
    pub commands: Vec<String>,
    /// The working directory input, empty for the agent's default.
    pub working_directory: String,
    /// Seconds before the agent stops the script.
    pub timeout_seconds: u64,
    /// Variables to add to the script's environment.
    pub environment: BTreeMap<String, String>,
}

impl Script {
    /// The script file's text: the lines joined with newlines, ending in a newline.
    pub fn text(&self) -> String {
        let mut text = self.commands.join("\n");
        text.push('\n');
        text
    }
}

/// `onFailure` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OnFailure {
    /// Skip the remaining steps; the step stays failed.
    #[serde(rename = "exit")]
    Exit,
    /// Skip the remaining steps and report the step as successful.
    #[serde(rename = "successAndExit")]
    SuccessAndExit,
}

/// `onSuccess` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OnSuccess {
    /// Skip the remaining steps.
    #[serde(rename = "exit")]
    Exit,
}

/// Reads a `timeoutSeconds` input as the agent does: a whole number of seconds (as a number or
/// as text) from 5 to 172800; anything else, or nothing, means 3600.
///
/// Only the input counts: like AWS's agent, tagrun ignores a `timeoutSeconds` written beside
/// `inputs` on a 2.x step.
pub fn timeout_seconds(value: Option<&Value>) -> u64 {
    let seconds = match value {
        Some(Value::Number(n)) => n.as_u64().or_else(|| n.as_f64().and_then(whole_seconds)),
        Some(Value::String(s)) => {
            let s = s.trim();
            s.parse::<u64>()
                .ok()
                .or_else(|| s.parse::<f64>().ok().and_then(whole_seconds))
        }
        _ => None,
    };
    seconds
        .filter(|s| (MIN_TIMEOUT_SECONDS..=MAX_TIMEOUT_SECONDS).contains(s))
        .unwrap_or(DEFAULT_TIMEOUT_SECONDS)
}

/// The whole seconds in a number of seconds that may have a fraction, if in range.
fn whole_seconds(seconds: f64) -> Option<u64> {
    let whole = seconds.trunc();
    // The range check makes the conversion exact.
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    (whole >= 0.0 && whole <= MAX_TIMEOUT_SECONDS as f64).then_some(whole as u64)
}

impl Document {
    /// Turns the document and its parameter values into the steps the agent runs on
    /// `platform`: inputs interpolated, script lines and timeouts resolved, preconditions
    /// evaluated, and `aws:runDocument` steps expanded into the scripts of the document they
    /// name.
    ///
    /// Fails with `InvalidParameters` when a declared parameter has no value: pass the result
    /// of [`Document::validate_parameters`] or [`Document::resolve_payload_parameters`].
    /// Problems of single steps (a plugin tagrun cannot run, inputs that interpolate to the
    /// wrong type) do not fail the plan; they become [`StepAction::Fail`] for that step, so
    /// the steps before it still run, as with AWS's agent.
    pub fn plan(
        &self,
        parameters: &ResolvedParameters,
        platform: Platform,
    ) -> Result<Plan, DocumentError> {
        self.plan_nested(parameters, platform, 0)
    }

    fn plan_nested(
        &self,
        parameters: &ResolvedParameters,
        platform: Platform,
        depth: usize,
    ) -> Result<Plan, DocumentError> {
        if let Some(missing) = self
            .parameters()
            .iter()
            .find(|p| parameters.get(p.name()).is_none())
        {
            return Err(DocumentError::Parameters(format!(
                "parameter {:?} has no value",
                missing.name()
            )));
        }

        let count = self.steps().len();
        let steps = self
            .steps()
            .iter()
            .enumerate()
            .map(|(index, step)| {
                let planner = Planner {
                    schema: self.schema_version(),
                    parameters,
                    platform,
                    depth,
                };
                planner.step(index, step, index + 1 == count)
            })
            .collect();
        Ok(Plan { steps })
    }
}

/// What every step of one document is planned with.
struct Planner<'a> {
    schema: SchemaVersion,
    parameters: &'a ResolvedParameters,
    platform: Platform,
    depth: usize,
}

impl Planner<'_> {
    fn step(&self, index: usize, step: &Step, is_last: bool) -> PlanStep {
        let precondition_met = step
            .precondition()
            .is_none_or(|p| p.holds(self.platform, self.parameters));
        let inputs = interpolate(step.inputs(), self.parameters);
        let flow = inputs.as_object().map(control_flow).unwrap_or_default();

        let action = if precondition_met {
            self.action(index, step, &inputs)
        } else {
            StepAction::Skip {
                reason: format!(
                    "Step execution skipped due to unsatisfied preconditions on {}",
                    self.platform
                ),
            }
        };

        PlanStep {
            name: step.name().to_owned(),
            plugin: step.action().to_owned(),
            precondition_met,
            action,
            on_failure: flow.on_failure,
            on_success: flow.on_success,
            finally_step: flow.finally_step && is_last,
        }
    }

    fn action(&self, index: usize, step: &Step, inputs: &Value) -> StepAction {
        let plugin = step.action();
        if plugin::is_implemented(plugin) && !plugin::platforms_of(plugin).contains(&self.platform)
        {
            let reason = format!("plugin {plugin} does not run on {}", self.platform);
            // Schema 2.2 documents mix platforms on purpose; older ones cannot.
            return match self.schema {
                SchemaVersion::V2_2 => StepAction::Skip { reason },
                _ => StepAction::Fail { reason },
            };
        }

        match plugin {
            RUN_SHELL_SCRIPT => self.scripts(index, plugin, Shell::Sh, inputs),
            RUN_POWERSHELL_SCRIPT => self.scripts(index, plugin, Shell::PowerShell, inputs),
            RUN_DOCUMENT => self.run_document(inputs),
            _ => StepAction::Fail {
                reason: format!("plugin {plugin} is not supported by tagrun yet"),
            },
        }
    }

    fn scripts(&self, index: usize, plugin: &str, shell: Shell, inputs: &Value) -> StepAction {
        let entries: Vec<&Map<String, Value>> = match inputs {
            Value::Object(map) => vec![map],
            Value::Array(items) => items.iter().filter_map(Value::as_object).collect(),
            _ => Vec::new(),
        };
        if entries.is_empty() {
            return StepAction::Fail {
                reason: format!("the inputs of {plugin} are not an object or a list of objects"),
            };
        }

        let default_id = match self.schema {
            SchemaVersion::V1_2 => format!("{index}.{plugin}"),
            _ => String::new(),
        };
        let scripts = entries
            .into_iter()
            .map(|entry| script(shell, entry, &default_id))
            .collect::<Result<Vec<_>, String>>();
        match scripts {
            Ok(scripts) => StepAction::Run { scripts },
            Err(reason) => StepAction::Fail { reason },
        }
    }

    /// Expands `aws:runDocument` into the scripts of the document it names.
    ///
    /// Limitation: only the built-in documents can be run this way; documents stored on the
    /// server and `documentType: LocalPath` fail the step with a message saying so.
    fn run_document(&self, inputs: &Value) -> StepAction {
        let fail = |reason: String| StepAction::Fail { reason };
        let Some(inputs) = inputs.as_object() else {
            return fail("the inputs of aws:runDocument are not an object".into());
        };
        if self.depth >= MAX_NESTING {
            return fail(format!(
                "aws:runDocument nests more than {MAX_NESTING} documents"
            ));
        }

        let kind = field(inputs, "documentType")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if kind != "SSMDocument" {
            return fail(format!(
                "aws:runDocument with documentType {kind:?} is not supported yet"
            ));
        }
        let path = field(inputs, "documentPath")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(inner) = builtin(path) else {
            return fail(format!(
                "aws:runDocument can run only the built-in documents AWS-RunShellScript and \
                 AWS-RunPowerShellScript; {path:?} is not supported yet"
            ));
        };

        let supplied = match document_parameters(field(inputs, "documentParameters")) {
            Ok(supplied) => supplied,
            Err(reason) => return fail(reason),
        };
        let planned = inner
            .document()
            .validate_parameters(&supplied)
            .and_then(|p| {
                inner
                    .document()
                    .plan_nested(&p, self.platform, self.depth + 1)
            });
        match planned {
            Ok(plan) => merge_nested(plan),
            Err(e) => fail(format!("document {path}: {e}")),
        }
    }
}

/// Reads `documentParameters`: an object, or JSON text of one, with values as SendCommand
/// would carry them (lists of strings).
fn document_parameters(value: Option<&Value>) -> Result<BTreeMap<String, Vec<String>>, String> {
    let parsed;
    let map = match value {
        None => return Ok(BTreeMap::new()),
        Some(Value::String(text)) if text.trim().is_empty() => return Ok(BTreeMap::new()),
        Some(Value::String(text)) => {
            parsed = serde_json::from_str::<Value>(text)
                .map_err(|_| "documentParameters is not a JSON object".to_owned())?;
            parsed.as_object()
        }
        Some(other) => other.as_object(),
    };
    let map = map.ok_or_else(|| "documentParameters is not an object".to_owned())?;

    Ok(map
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), string_items(v)))
        .collect())
}

fn string_items(value: &Value) -> Vec<String> {
    match value {
        Value::Array(items) => items.iter().map(text_of).collect(),
        other => vec![text_of(other)],
    }
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Folds the steps of a nested document into the one step that ran it.
fn merge_nested(plan: Plan) -> StepAction {
    let mut scripts = Vec::new();
    let mut skipped = None;
    for step in plan.steps {
        match step.action {
            StepAction::Run { scripts: more } => scripts.extend(more),
            StepAction::Skip { reason } => skipped = Some(reason),
            fail @ StepAction::Fail { .. } => return fail,
        }
    }

    match (scripts.is_empty(), skipped) {
        (false, _) => StepAction::Run { scripts },
        (true, Some(reason)) => StepAction::Skip { reason },
        (true, None) => StepAction::Fail {
            reason: "the nested document has no steps".into(),
        },
    }
}

/// Resolves one script from interpolated inputs, or says why it cannot run.
fn script(shell: Shell, inputs: &Map<String, Value>, default_id: &str) -> Result<Script, String> {
    let Some(run_command) = field(inputs, "runCommand") else {
        return Err("the step has no runCommand input".into());
    };
    let mut commands = Vec::new();
    push_lines(run_command, &mut commands);

    Ok(Script {
        shell,
        id: field(inputs, "id").map_or_else(|| default_id.to_owned(), text_of),
        commands,
        working_directory: field(inputs, "workingDirectory")
            .map(text_of)
            .unwrap_or_default(),
        timeout_seconds: timeout_seconds(field(inputs, "timeoutSeconds")),
        environment: environment(field(inputs, "environment"))?,
    })
}

/// Flattens `runCommand` into lines: a list parameter in a list splices in as lines.
fn push_lines(value: &Value, lines: &mut Vec<String>) {
    match value {
        Value::Array(items) => items.iter().for_each(|item| push_lines(item, lines)),
        Value::Null => {}
        other => lines.push(text_of(other)),
    }
}

fn environment(value: Option<&Value>) -> Result<BTreeMap<String, String>, String> {
    match value {
        None => Ok(BTreeMap::new()),
        Some(Value::Object(map)) => Ok(map.iter().map(|(k, v)| (k.clone(), text_of(v))).collect()),
        Some(_) => Err("the environment input is not an object".into()),
    }
}

#[derive(Default)]
struct ControlFlow {
    on_failure: Option<OnFailure>,
    on_success: Option<OnSuccess>,
    finally_step: bool,
}

fn control_flow(inputs: &Map<String, Value>) -> ControlFlow {
    let word = |key| field(inputs, key).and_then(Value::as_str);
    ControlFlow {
        on_failure: match word("onFailure") {
            Some("exit") => Some(OnFailure::Exit),
            Some("successAndExit") => Some(OnFailure::SuccessAndExit),
            _ => None,
        },
        on_success: (word("onSuccess") == Some("exit")).then_some(OnSuccess::Exit),
        finally_step: matches!(field(inputs, "finallyStep"), Some(Value::Bool(true)))
            || word("finallyStep") == Some("true"),
    }
}

#[cfg(test)]
mod tests;
