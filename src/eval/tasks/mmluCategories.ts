/**
 * The MMLU subject → category map of the hendrycks repository (`categories.py`): each subject has a subcategory,
 * each subcategory belongs to one of four categories. The paper's table names them Humanities / STEM / Social / Other.
 */

export const MMLU_CATEGORIES = ['Humanities', 'STEM', 'Social Sciences', 'Other'] as const;
export type MmluCategory = (typeof MMLU_CATEGORIES)[number];

/** categories.py `categories`, keys renamed: "humanities", "STEM", "social sciences", "other (business, health, misc.)". */
const SUBCATEGORY_TO_CATEGORY: Readonly<Record<string, MmluCategory>> = Object.freeze({
  physics: 'STEM', chemistry: 'STEM', biology: 'STEM', 'computer science': 'STEM', math: 'STEM', engineering: 'STEM',
  history: 'Humanities', philosophy: 'Humanities', law: 'Humanities',
  politics: 'Social Sciences', culture: 'Social Sciences', economics: 'Social Sciences', geography: 'Social Sciences', psychology: 'Social Sciences',
  other: 'Other', business: 'Other', health: 'Other',
});

/** categories.py `subcategories` (each subject has exactly one). */
const MMLU_SUBCATEGORIES: Readonly<Record<string, string>> = Object.freeze({
  abstract_algebra: 'math',
  anatomy: 'health',
  astronomy: 'physics',
  business_ethics: 'business',
  clinical_knowledge: 'health',
  college_biology: 'biology',
  college_chemistry: 'chemistry',
  college_computer_science: 'computer science',
  college_mathematics: 'math',
  college_medicine: 'health',
  college_physics: 'physics',
  computer_security: 'computer science',
  conceptual_physics: 'physics',
  econometrics: 'economics',
  electrical_engineering: 'engineering',
  elementary_mathematics: 'math',
  formal_logic: 'philosophy',
  global_facts: 'other',
  high_school_biology: 'biology',
  high_school_chemistry: 'chemistry',
  high_school_computer_science: 'computer science',
  high_school_european_history: 'history',
  high_school_geography: 'geography',
  high_school_government_and_politics: 'politics',
  high_school_macroeconomics: 'economics',
  high_school_mathematics: 'math',
  high_school_microeconomics: 'economics',
  high_school_physics: 'physics',
  high_school_psychology: 'psychology',
  high_school_statistics: 'math',
  high_school_us_history: 'history',
  high_school_world_history: 'history',
  human_aging: 'health',
  human_sexuality: 'culture',
  international_law: 'law',
  jurisprudence: 'law',
  logical_fallacies: 'philosophy',
  machine_learning: 'computer science',
  management: 'business',
  marketing: 'business',
  medical_genetics: 'health',
  miscellaneous: 'other',
  moral_disputes: 'philosophy',
  moral_scenarios: 'philosophy',
  nutrition: 'health',
  philosophy: 'philosophy',
  prehistory: 'history',
  professional_accounting: 'other',
  professional_law: 'law',
  professional_medicine: 'health',
  professional_psychology: 'psychology',
  public_relations: 'politics',
  security_studies: 'politics',
  sociology: 'culture',
  us_foreign_policy: 'politics',
  virology: 'health',
  world_religions: 'philosophy',
});

/** The standard 57 subjects, sorted (the CSV file names: `<subject>_dev.csv`, `<subject>_test.csv`). */
export const MMLU_SUBJECTS: readonly string[] = Object.freeze(Object.keys(MMLU_SUBCATEGORIES).sort());

/** The category of a subject, or undefined for a name not in the standard 57. */
export function mmluCategory(subject: string): MmluCategory | undefined {
  const sub = MMLU_SUBCATEGORIES[subject];
  return sub === undefined ? undefined : SUBCATEGORY_TO_CATEGORY[sub];
}
