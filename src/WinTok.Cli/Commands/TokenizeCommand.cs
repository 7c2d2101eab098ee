using System.CommandLine;
using Azure.Storage.Blobs;
using Microsoft.Extensions.DependencyInjection;
using WinTok.Cli.Display;
using WinTok.Cli.Hosting;
using WinTok.Data.Corpus;
using WinTok.Jobs.Tokenize;
using WinTok.Results;
using WinTok.Worker.Hosting;

namespace WinTok.Cli.Commands;

/// <summary>
/// `wintok tokenize INPUT OUTPUT --checkpoint CKPT`: the whole job in this process on embedded defaults (in-process
/// queue, SQLite results database, local files or blob locations). Everything is checked before anything is created,
/// so a rejected run leaves nothing behind. Exit code 0 when the job succeeded (images that could not be read do not
/// fail it), 1 when it failed or was cancelled, 2 on bad arguments.
/// </summary>
internal static class TokenizeCommand
{
    /// <summary>Where the results database of a job with a local OUTPUT goes, inside OUTPUT (not part of the dataset).</summary>
    public const string StateFolder = "_wintok";

    public static Command Create()
    {
        var arguments = new TokenizeArguments();
        var database = new Option<string?>("--db")
        {
            Description = $"SQLite results database (default: OUTPUT/{StateFolder}/results.db for a local OUTPUT, else ~/.wintok/results.db).",
        };
        var command = new Command("tokenize", "Tokenize an image corpus into token shards, in this process.");
        arguments.AddTo(command);
        command.Options.Add(database);
        command.SetAction((parse, cancellationToken) => RunAsync(arguments, parse, parse.GetValue(database), cancellationToken));
        return command;
    }

    private static async Task<int> RunAsync(TokenizeArguments arguments, ParseResult parse, string? database, CancellationToken cancellationToken)
    {
        var request = arguments.ToRequest(parse);
        if (TokenizeArguments.Problem(request, Environment.GetEnvironmentVariable("WINTOK_BLOB_CONNECTION")) is { } problem)
            return ExitCodes.Usage(problem);

        database = Path.GetFullPath(database ?? DefaultDatabase(request.Output));
        var settings = arguments.Model.Settings(parse);
        settings["JobQueue:Transport"] = "InProcess";
        settings["ResultsDatabase:Provider"] = "Sqlite";
        settings["ResultsDatabase:ConnectionString"] = $"Data Source={database}";

        var builder = WinTokHost.CreateBuilder(parse.GetValue(arguments.Verbose) ? Verbosity.Normal : Verbosity.Quiet, settings);
        builder.AddWinTokWorker(healthFile: false);
        builder.AddEmbeddedJobRunner();
        using var host = builder.Build();
        if (await WinTokHost.SettingsProblemAsync(host, cancellationToken) is { } settingsProblem) return ExitCodes.Usage(settingsProblem);

        // Check everything first: the checkpoint, the corpus, the output. Nothing exists yet, not even the database.
        var blobService = host.Services.GetService<BlobServiceClient>();
        if (await OutputLocation.ProblemAsync(request.Output, blobService, cancellationToken) is { } outputProblem)
            return ExitCodes.Usage(outputProblem);
        PlannedJob<TokenizeJobSpec> plan;
        await using (var scope = host.Services.CreateAsyncScope())
        {
            plan = await scope.ServiceProvider.GetRequiredService<TokenizeJobSubmitter>().PlanAsync(request, cancellationToken);
        }

        await OutputLocation.EnsureExistsAsync(request.Output, blobService, cancellationToken);
        Directory.CreateDirectory(Path.GetDirectoryName(database)!);
        Guid? submitted = null;
        var exitCode = await WinTokHost.RunJobAsync(host, async (services, token) =>
        {
            SubmittedJob job;
            await using (var scope = services.CreateAsyncScope())
            {
                job = await scope.ServiceProvider.GetRequiredService<TokenizeJobSubmitter>().SubmitAsync(plan, token);
            }
            submitted = job.JobId;
            Console.WriteLine($"Job {job.JobId}: {job.Partitions} partitions of {request.Input} ({plan.Spec.Kind}) -> {request.Output}");
            var progress = await services.GetRequiredService<EmbeddedJobRunner>()
                .WaitAsync(job.JobId, ProgressDisplay.Create(CliConsole.Create(), Console.Out), token);
            return progress.Status == JobStatus.Succeeded ? ExitCodes.Success : ExitCodes.Failed;
        }, cancellationToken);

        // After the host has stopped: the handler that finished the job has written the manifest by then, and a partition
        // that was running when the job was cancelled has committed or been given back.
        if (submitted is { } jobId)
            await EmbeddedJobRunner.WriteSummaryAsync(host.Services, jobId, database, Console.Out);
        return exitCode;
    }

    /// <summary>OUTPUT/_wintok/results.db beside a local dataset, so the job's record travels with it; else the home folder.</summary>
    internal static string DefaultDatabase(string output) => FileStores.IsBlobLocation(output)
        ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".wintok", "results.db")
        : Path.Combine(output, StateFolder, "results.db");
}
