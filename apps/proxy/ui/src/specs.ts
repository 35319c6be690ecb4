/**
 * The forms of every entity: LiteLLM's request fields with their labels and kinds. Pure data (unit-tested: the key
 * form covers every limit and budget field of `/key/generate`).
 */
import type { FieldSpec } from "./validate";

const budgetFields = (owner: string): FieldSpec[] => [
  {
    name: "max_budget",
    label: "Max budget (USD)",
    kind: "usd",
    help: `Spend cap of the ${owner} per period; empty = no cap.`,
  },
  { name: "soft_budget", label: "Soft budget (USD)", kind: "usd", help: "Alert threshold; never blocks." },
  {
    name: "budget_duration",
    label: "Budget period",
    kind: "duration",
    placeholder: "never",
    help: "Resets the spend: 30s, 24h, 30d, 1mo; empty = never.",
  },
];

const limitFields = (): FieldSpec[] => [
  { name: "rpm_limit", label: "Requests per minute", kind: "int" },
  { name: "tpm_limit", label: "Tokens per minute", kind: "int" },
  { name: "max_parallel_requests", label: "Max parallel requests", kind: "int" },
];

const modelLimitFields = (): FieldSpec[] => [
  {
    name: "model_rpm_limit",
    label: "Requests per minute by model",
    kind: "model-int-map",
    placeholder: '{"gpt-4o": 10}',
  },
  {
    name: "model_tpm_limit",
    label: "Tokens per minute by model",
    kind: "model-int-map",
    placeholder: '{"gpt-4o": 10000}',
  },
];

export const ROLE_OPTIONS = [
  { value: "proxy_admin", label: "Proxy admin" },
  { value: "proxy_admin_viewer", label: "Proxy admin (viewer)" },
  { value: "internal_user", label: "Internal user" },
  { value: "internal_user_viewer", label: "Internal user (viewer)" },
];

export function keySpecs(teams: { value: string; label: string }[], admin: boolean): FieldSpec[] {
  return [
    { name: "key_alias", label: "Alias", kind: "text", help: "A name to find the key by." },
    { name: "team_id", label: "Team", kind: "select", options: teams },
    ...(admin
      ? [{ name: "user_id", label: "Owner (user id)", kind: "id", help: "The user the key belongs to." } as FieldSpec]
      : []),
    {
      name: "models",
      label: "Models",
      kind: "list",
      placeholder: "all models",
      help: "Comma-separated model names or access groups; empty = all.",
    },
    {
      name: "duration",
      label: "Expires after",
      kind: "duration",
      placeholder: "never",
      help: "e.g. 30d; empty = never expires.",
    },
    ...budgetFields("key"),
    { name: "budget_id", label: "Reusable budget id", kind: "id", help: "Links a budget from the Budgets page." },
    ...limitFields(),
    ...modelLimitFields(),
    {
      name: "model_max_budget",
      label: "Budget by model",
      kind: "model-budget-map",
      variant: "key",
      placeholder: '{"gpt-4o": {"budget_limit": 5, "time_period": "1d"}}',
    },
    { name: "metadata", label: "Metadata (JSON)", kind: "json", placeholder: '{"env": "prod"}' },
  ];
}

export const KEY_GROUPS: [string, string[]][] = [
  ["Budget", ["max_budget", "soft_budget", "budget_duration", "budget_id", "model_max_budget"]],
  ["Rate limits", ["rpm_limit", "tpm_limit", "max_parallel_requests", "model_rpm_limit", "model_tpm_limit"]],
];

export const TEAM_SPECS: FieldSpec[] = [
  { name: "team_alias", label: "Team name", kind: "text", required: true },
  {
    name: "team_id",
    label: "Team id",
    kind: "id",
    createOnly: true,
    placeholder: "generated",
    help: "Leave empty to generate one.",
  },
  { name: "organization_id", label: "Organization id", kind: "id" },
  { name: "models", label: "Models", kind: "list", placeholder: "all models" },
  ...budgetFields("team"),
  ...limitFields(),
  ...modelLimitFields(),
  {
    name: "team_member_budget",
    label: "Default member budget (USD)",
    kind: "usd",
    help: "Each member's budget in this team.",
  },
  { name: "team_member_budget_duration", label: "Member budget period", kind: "duration" },
  { name: "team_member_rpm_limit", label: "Member requests per minute", kind: "int" },
  { name: "team_member_tpm_limit", label: "Member tokens per minute", kind: "int" },
  { name: "metadata", label: "Metadata (JSON)", kind: "json" },
];

export const TEAM_GROUPS: [string, string[]][] = [
  ["Budget", ["max_budget", "soft_budget", "budget_duration"]],
  ["Rate limits", ["rpm_limit", "tpm_limit", "max_parallel_requests", "model_rpm_limit", "model_tpm_limit"]],
  ["Members", ["team_member_budget", "team_member_budget_duration", "team_member_rpm_limit", "team_member_tpm_limit"]],
];

export const MEMBER_SPECS: FieldSpec[] = [
  { name: "user_id", label: "User id", kind: "id", required: true },
  { name: "user_email", label: "Email", kind: "email" },
  {
    name: "role",
    label: "Role in team",
    kind: "select",
    required: true,
    options: [
      { value: "user", label: "Member" },
      { value: "admin", label: "Team admin" },
    ],
  },
  { name: "max_budget_in_team", label: "Budget in team (USD)", kind: "usd" },
];

export const MEMBER_UPDATE_SPECS: FieldSpec[] = [
  MEMBER_SPECS[2]!,
  MEMBER_SPECS[3]!,
  { name: "rpm_limit", label: "Requests per minute", kind: "int" },
  { name: "tpm_limit", label: "Tokens per minute", kind: "int" },
];

export const USER_SPECS: FieldSpec[] = [
  { name: "user_id", label: "User id", kind: "id", createOnly: true, placeholder: "generated" },
  { name: "user_email", label: "Email", kind: "email" },
  { name: "user_alias", label: "Name", kind: "text" },
  { name: "user_role", label: "Role", kind: "select", required: true, options: ROLE_OPTIONS },
  { name: "models", label: "Models", kind: "list", placeholder: "all models" },
  ...budgetFields("user"),
  ...limitFields(),
  { name: "metadata", label: "Metadata (JSON)", kind: "json" },
];

export const ORG_SPECS: FieldSpec[] = [
  { name: "organization_alias", label: "Organization name", kind: "text", required: true },
  { name: "organization_id", label: "Organization id", kind: "id", createOnly: true, placeholder: "generated" },
  { name: "models", label: "Models", kind: "list", placeholder: "all models" },
  ...budgetFields("organization"),
  ...limitFields(),
  { name: "metadata", label: "Metadata (JSON)", kind: "json" },
];

export const CUSTOMER_SPECS: FieldSpec[] = [
  {
    name: "user_id",
    label: "End-user id",
    kind: "id",
    required: true,
    createOnly: true,
    help: "The `user` your app sends.",
  },
  { name: "alias", label: "Name", kind: "text" },
  { name: "max_budget", label: "Max budget (USD)", kind: "usd", exclusiveWith: "budget_id" },
  { name: "budget_duration", label: "Budget period", kind: "duration", placeholder: "never" },
  { name: "budget_id", label: "Reusable budget id", kind: "id", exclusiveWith: "max_budget" },
  ...limitFields(),
  {
    name: "allowed_model_region",
    label: "Allowed region",
    kind: "select",
    options: [
      { value: "eu", label: "EU" },
      { value: "us", label: "US" },
    ],
  },
  { name: "default_model", label: "Default model", kind: "text" },
];

export const BUDGET_SPECS: FieldSpec[] = [
  { name: "budget_id", label: "Budget id", kind: "id", required: true, createOnly: true },
  ...budgetFields("budget's holders"),
  ...limitFields(),
  {
    name: "model_max_budget",
    label: "Budget by model",
    kind: "model-budget-map",
    variant: "budget",
    placeholder: '{"gpt-4o": {"max_budget": 5, "budget_duration": "1d"}}',
  },
];
