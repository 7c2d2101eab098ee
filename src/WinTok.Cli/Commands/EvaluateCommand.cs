using System.CommandLine;
using Microsoft.Extensions.DependencyInjection;
using WinTok.Cli.Hosting;
using WinTok.Jobs.Evaluate;

namespace WinTok.Cli.Commands;

/// <summary>
/// `wintok evaluate CHECKPOINT DATASET --output DIR`: rFID, PSNR, SSIM, LPIPS, zero-shot accuracy and codebook usage of
/// a checkpoint, as the reference evaluation computes them, in this process on the embedded defaults
/// (<see cref="LocalJob"/>). Leaves metrics.json, per_image/*.parquet and grid.png in DIR and the numbers in the results
/// database (`wintok metrics list`).
/// </summary>
internal static class EvaluateCommand
{
    public static Command Create()
    {
        var arguments = new EvaluateArguments();
        var database = new Option<string?>("--db")
        {
            Description = $"SQLite results database (default: DIR/{LocalJob.StateFolder}/results.db for a local DIR, else ~/.wintok/results.db).",
        };
        var command = new Command("evaluate", "Evaluate a checkpoint on a dataset (rFID, PSNR, SSIM, LPIPS, zero-shot, codebook usage), in this process.");
        arguments.AddTo(command);
        command.Options.Add(database);
        command.SetAction((parse, cancellationToken) =>
        {
            var request = arguments.ToRequest(parse);
            if (Problem(request, Environment.GetEnvironmentVariable("WINTOK_BLOB_CONNECTION")) is { } problem)
                return Task.FromResult(ExitCodes.Usage(problem));
            return LocalJob.RunAsync(request.Output, parse.GetValue(database), arguments.Model.Settings(parse), parse.GetValue(arguments.Verbose),
                (services, token) => services.GetRequiredService<EvaluateJobSubmitter>().PlanAsync(request, token),
                (services, plan, token) => services.GetRequiredService<EvaluateJobSubmitter>().SubmitAsync(plan, token),
                (plan, job) => $"Job {job.JobId}: evaluating {request.Checkpoint} on {job.Partitions} partitions of {request.Dataset} " +
                    $"({string.Join(", ", plan.Spec.Metrics)}; {plan.Spec.Precision}) -> {request.Output}",
                cancellationToken);
        });
        return command;
    }

    /// <summary>What can be told wrong before any service starts; null when nothing is.</summary>
    internal static string? Problem(EvaluateRequest request, string? blobConnection)
    {
        foreach (var (name, location) in new[] { ("DATASET", request.Dataset), ("--output", request.Output), ("CHECKPOINT", request.Checkpoint) })
        {
            if (WinTok.Data.Corpus.FileStores.IsBlobLocation(location) && string.IsNullOrEmpty(blobConnection))
                return $"{name} {location} is in blob storage, but WINTOK_BLOB_CONNECTION is not set";
        }
        if (!WinTok.Data.Corpus.FileStores.IsBlobLocation(request.Dataset) && !Directory.Exists(request.Dataset))
            return $"dataset folder {request.Dataset} does not exist";
        if (!WinTok.Data.Corpus.FileStores.IsBlobLocation(request.Checkpoint) && !File.Exists(request.Checkpoint))
            return $"checkpoint {request.Checkpoint} does not exist";
        if (request.Weights is { } weights && !Directory.Exists(weights)) return $"weights folder {weights} does not exist";
        if (request.TextTower is { } tower && !Directory.Exists(tower)) return $"text tower folder {tower} does not exist";
        return null;
    }
}
