/**
 * What the configuration reference (docs/configuration.md) says about one environment variable of a
 * config class. `npm run docs:config` renders the reference's tables from these, the class's
 * validators and its defaults; a test fails when the committed file and the code differ.
 */
export interface EnvVarDoc {
  /** Markdown, for the reference's "meaning" column: what the variable does, when to set it. */
  description: string;
  /**
   * The value the code falls back to when the variable is unset, for a class that holds raw strings
   * and applies its defaults later. Leave it out where the class has a property initializer: that is
   * read directly.
   */
  default?: string | number;
  /** The default in words (markdown) when the code computes it, e.g. "`b2` when `B2_KEY_ID` is set". */
  defaultText?: string;
  /** Required only in some cases: which ones (markdown), e.g. "for `b2`". */
  requiredWhen?: string;
  /** A credential: comes from a secret store at run time, never from an image, a committed file or a log. */
  secret?: boolean;
}

// Kept on the class under a registered symbol, so every copy of this module reads the same entries.
const DOCS = Symbol.for('avatar-fleet.env-var-docs');
type Documented = { [DOCS]?: Map<string, EnvVarDoc> };

/** Documents one environment variable (a property of a config class) for the configuration reference. */
export function EnvVar(doc: EnvVarDoc): PropertyDecorator {
  return (target, key) => {
    const cls = target.constructor as Documented;
    if (!Object.prototype.hasOwnProperty.call(cls, DOCS)) cls[DOCS] = new Map();
    cls[DOCS]!.set(String(key), doc);
  };
}

/** The documented variables of a config class, in the order the class declares them. */
export function envVarDocs(cls: abstract new (...args: never[]) => unknown): ReadonlyMap<string, EnvVarDoc> {
  const own = Object.prototype.hasOwnProperty.call(cls, DOCS) ? (cls as Documented)[DOCS] : undefined;
  return own ?? new Map();
}
