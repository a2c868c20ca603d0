/* commands.h - the subcommands of pstrain that work on a finished model:
 *
 *   pstrain export --checkpoint C --format onnx|safetensors --out FILE [--rows FILE]...
 *   pstrain predict --checkpoint C --images FILE [--labels FILE] [--limit N]
 *   pstrain predict --checkpoint C --criteo FILE [--limit N] [--rows FILE]...
 *                   [--dump-inputs PREFIX]
 *
 * Each takes main's argc/argv (argv[1] is the subcommand), prints its own
 * results and errors, and returns the process exit status (0 ok, 1 failure,
 * 2 bad usage). */
#ifndef PST_COMMANDS_H
#define PST_COMMANDS_H

int cmd_export(int argc, char **argv);
int cmd_predict(int argc, char **argv);

#endif
