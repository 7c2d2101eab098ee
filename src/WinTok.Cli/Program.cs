using System.CommandLine;
using WinTok.Checkpoints;
using WinTok.Cli.Commands;
using WinTok.Cli.Hosting;
using WinTok.Evaluation;
using WinTok.Jobs.Checkpoints;

// Before anything touches a GPU: torch's CUDA allocator reads its configuration once.
WinTok.Cuda.CudaAllocatorSettings.PreferExpandableSegments();

// The `wintok` command line. Each verb lives in Commands/ as a static factory and builds its host with
// Hosting/WinTokHost; this file is the table of contents.
var root = new RootCommand("WinTok: pretokenize image corpora with the WinTok or UniTok visual tokenizer, evaluate checkpoints (also on schedules) and train WinTok.")
{
    TokenizeCommand.Create(),     // one machine: in-process queue, SQLite results
    EvaluateCommand.Create(),     // the same, for evaluations
    TrainCommand.Create(),        // the same, for a training run
    SubmitCommand.Create(),       // many machines: PostgreSQL + RabbitMQ ...
    WorkerCommand.Create(),       // ... consumed by workers (on one machine: embedded defaults, schedules included)
    SchedulesCommand.Create(),    // add | list | show | pause | resume | remove | run-now
    SchedulerCommand.Create(),    // the scheduler service (replicas share a lease)
    JobsCommand.Create(),         // list | show | cancel | retry
    MetricsCommand.Create(),      // evaluation results: list | compare | trend
    DashboardCommand.Create(),    // jobs, failures, evaluations and workers in a browser
    MigrateCommand.Create(),      // results database schema (Helm pre-install hook)
    SampleCommand.Create(),       // demo images and a tiny random checkpoint
    VerifyCommand.Create(),
};

// Help says `wintok` however it is started (the launcher quickstart.sh installs runs `dotnet WinTok.Cli.dll`).
root.HelpName = "wintok";

var parse = root.Parse(args);
// Ctrl+C and SIGTERM cancel the verb's token and the verb ends on its own terms: a job is recorded as cancelled, a
// worker drains (HostOptions:ShutdownTimeout). The forced exit only backs that up, so it waits longer than any drain.
// Bad input that reaches a verb unhandled (an unreadable checkpoint, a missing folder, an unknown preset) is the
// user's to fix: one line naming it and exit code 2, not a stack trace. Anything else still crashes loudly.
try
{
    var exitCode = await parse.InvokeAsync(new InvocationConfiguration
    {
        ProcessTerminationTimeout = TimeSpan.FromMinutes(15),
        EnableDefaultExceptionHandler = false,
    });
    return parse.Errors.Count > 0 ? ExitCodes.BadArguments : exitCode;
}
catch (Exception e) when (e is CheckpointFormatException or CheckpointMismatchException or ArgumentException
    or FileNotFoundException or DirectoryNotFoundException or InvalidDataException or WeightFileMismatchException or CheckpointChangedException)
{
    // An ArgumentException's message ends with "(Parameter 'name')", which names our code's parameter, not the user's.
    var message = e is ArgumentException { ParamName: { } name } argument
        ? argument.Message.Replace($" (Parameter '{name}')", "", StringComparison.Ordinal)
        : e.Message;
    await Console.Error.WriteLineAsync($"wintok: {message}");
    return ExitCodes.BadArguments;
}
