using System.CommandLine;
using Microsoft.Extensions.DependencyInjection;
using WinTok.Cli.Hosting;
using WinTok.Jobs.Tokenize;

namespace WinTok.Cli.Commands;

/// <summary>
/// `wintok tokenize INPUT OUTPUT --checkpoint CKPT`: the whole job in this process on the embedded defaults
/// (<see cref="LocalJob"/>). Exit code 0 when the job succeeded (images that could not be read do not fail it), 1 when
/// it failed or was cancelled, 2 on bad arguments.
/// </summary>
internal static class TokenizeCommand
{
    public static Command Create()
    {
        var arguments = new TokenizeArguments();
        var database = new Option<string?>("--db")
        {
            Description = $"SQLite results database (default: OUTPUT/{LocalJob.StateFolder}/results.db for a local OUTPUT, else ~/.wintok/results.db).",
        };
        var command = new Command("tokenize", "Tokenize an image corpus into token shards, in this process.");
        arguments.AddTo(command);
        command.Options.Add(database);
        command.SetAction((parse, cancellationToken) =>
        {
            var request = arguments.ToRequest(parse);
            if (TokenizeArguments.Problem(request, Environment.GetEnvironmentVariable("WINTOK_BLOB_CONNECTION")) is { } problem)
                return Task.FromResult(ExitCodes.Usage(problem));
            return LocalJob.RunAsync(request.Output, parse.GetValue(database), arguments.Model.Settings(parse), parse.GetValue(arguments.Verbose),
                (services, token) => services.GetRequiredService<TokenizeJobSubmitter>().PlanAsync(request, token),
                (services, plan, token) => services.GetRequiredService<TokenizeJobSubmitter>().SubmitAsync(plan, token),
                (plan, job) => $"Job {job.JobId}: {job.Partitions} partitions of {request.Input} ({plan.Spec.Kind}) -> {request.Output}",
                cancellationToken);
        });
        return command;
    }
}
