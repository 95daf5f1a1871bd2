// JSON lines on stderr; one object per event. Callers pass fields, never secrets or tokens.
export type Logger = (level: "info" | "warn" | "error", msg: string, fields?: object) => void;

export const jsonLogger: Logger = (level, msg, fields) => {
  process.stderr.write(JSON.stringify({ ts: new Date().toISOString(), level, msg, ...fields }) + "\n");
};
