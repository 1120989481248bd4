/**
 * Errors a user can act on. Anything thrown as a LowbitError is printed by the CLI as one line
 * (no stack trace) and exits with code 2. `file` names the file at fault when there is one.
 */
export class LowbitError extends Error {
  readonly file: string | undefined;
  constructor(message: string, file?: string) {
    super(file ? `${file}: ${message}` : message);
    this.name = 'LowbitError';
    this.file = file;
  }
}

/** A file whose bytes do not match its format (truncated, corrupt, hostile). */
export class FormatError extends LowbitError {
  constructor(file: string, message: string) {
    super(message, file);
    this.name = 'FormatError';
  }
}

/** Bad arguments or settings (shape mismatch, unknown name, value out of range). */
export class UsageError extends LowbitError {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/**
 * The compute device failed mid-run (a WebGPU device lost, or out of its memory): nothing computed after it is
 * trusted and nothing is written (results are written whole at the end, atomically).
 */
export class DeviceError extends LowbitError {
  constructor(message: string) {
    super(message);
    this.name = 'DeviceError';
  }
}
