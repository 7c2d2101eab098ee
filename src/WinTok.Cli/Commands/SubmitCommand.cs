using System.CommandLine;
using Azure.Storage.Blobs;
using Microsoft.Extensions.DependencyInjection;
using WinTok.Cli.Hosting;
using WinTok.Jobs;
using WinTok.Jobs.Evaluate;
using WinTok.Jobs.Tokenize;
using WinTok.Jobs.Train;
using WinTok.Messaging;
using WinTok.Results;
using WinTok.Worker.Hosting;

namespace WinTok.Cli.Commands;

/// <summary>
/// `wintok submit tokenize|evaluate|train ...`: records the job in the results database (PostgreSQL from WINTOK_POSTGRES),
/// plans its partitions and publishes one message each to RabbitMQ (WINTOK_RABBITMQ) for the `wintok worker`s. Checks
/// everything first, so a rejected request records nothing. The job id is the first line of stdout, alone, for scripts.
/// </summary>
internal static class SubmitCommand
{
    public static Command Create() => new("submit", "Submit a job to the workers (results in PostgreSQL, partitions on RabbitMQ).")
    {
        CreateTokenize(),
        CreateEvaluate(),
        CreateTrain(),
    };

    private static Command CreateTrain()
    {
        var config = new Argument<string>("CONFIG") { Description = "The training configuration (JSON; see docs/training.md)." };
        var verbose = new Option<bool>("--verbose") { Description = "Log what the submission does to stderr." };
        var command = new Command("train", "Submit a training run: one GPU worker leases the whole run; another resumes it from its newest checkpoint if that one dies.")
        {
            config, verbose,
        };
        command.SetAction((parse, cancellationToken) =>
        {
            if (TrainCommand.Read(parse.GetValue(config)!) is not { } train) return Task.FromResult(ExitCodes.BadArguments);
            return SubmitAsync(train.Output, [], parse.GetValue(verbose),
                (services, token) => services.GetRequiredService<TrainJobSubmitter>().PlanAsync(train, token),
                (services, plan, token) => services.GetRequiredService<TrainJobSubmitter>().SubmitAsync(plan, token),
                (plan, job) => $"Submitted the training of {plan.Spec.MaxIterations} iterations (seed {plan.Spec.Seed}) -> {train.Output}.",
                cancellationToken);
        });
        return command;
    }

    private static Command CreateTokenize()
    {
        var arguments = new TokenizeArguments();
        var command = new Command("tokenize", "Submit a tokenize job: record it, plan its partitions, publish them.");
        arguments.AddTo(command);
        command.SetAction((parse, cancellationToken) =>
        {
            var request = arguments.ToRequest(parse);
            if (TokenizeArguments.Problem(request, Environment.GetEnvironmentVariable("WINTOK_BLOB_CONNECTION")) is { } problem)
                return Task.FromResult(ExitCodes.Usage(problem));
            return SubmitAsync(request.Output, arguments.Model.Settings(parse), parse.GetValue(arguments.Verbose),
                (services, token) => services.GetRequiredService<TokenizeJobSubmitter>().PlanAsync(request, token),
                (services, plan, token) => services.GetRequiredService<TokenizeJobSubmitter>().SubmitAsync(plan, token),
                (plan, job) => $"Submitted {job.Partitions} partitions of {request.Input} ({plan.Spec.Kind}) -> {request.Output}.",
                cancellationToken);
        });
        return command;
    }

    private static Command CreateEvaluate()
    {
        var arguments = new EvaluateArguments();
        var command = new Command("evaluate", "Submit an evaluation job: record it, plan its partitions, publish them.");
        arguments.AddTo(command);
        command.SetAction((parse, cancellationToken) =>
        {
            var request = arguments.ToRequest(parse);
            if (EvaluateCommand.Problem(request, Environment.GetEnvironmentVariable("WINTOK_BLOB_CONNECTION")) is { } problem)
                return Task.FromResult(ExitCodes.Usage(problem));
            return SubmitAsync(request.Output, arguments.Model.Settings(parse), parse.GetValue(arguments.Verbose),
                (services, token) => services.GetRequiredService<EvaluateJobSubmitter>().PlanAsync(request, token),
                (services, plan, token) => services.GetRequiredService<EvaluateJobSubmitter>().SubmitAsync(plan, token),
                (plan, job) => $"Submitted the evaluation of {request.Checkpoint} on {job.Partitions} partitions of {request.Dataset} ({string.Join(", ", plan.Spec.Metrics)}) -> {request.Output}.",
                cancellationToken);
        });
        return command;
    }

    private static async Task<int> SubmitAsync<TSpec>(
        string output,
        Dictionary<string, string?> settings,
        bool verbose,
        Func<IServiceProvider, CancellationToken, Task<PlannedJob<TSpec>>> plan,
        Func<IServiceProvider, PlannedJob<TSpec>, CancellationToken, Task<SubmittedJob>> submit,
        Func<PlannedJob<TSpec>, SubmittedJob, string> describe,
        CancellationToken cancellationToken)
    {
        // --device and --batch-size belong to the workers; here they are only checked.
        var builder = WinTokHost.CreateBuilder(verbose ? Verbosity.Normal : Verbosity.Quiet, settings);
        builder.AddResultsStore();
        builder.AddJobQueue();
        builder.AddJobControl();
        builder.AddCheckpointInspector();
        using var host = builder.Build();
        if (await WinTokHost.SettingsProblemAsync(host, cancellationToken) is { } settingsProblem) return ExitCodes.Usage(settingsProblem);

        var blobService = host.Services.GetService<BlobServiceClient>();
        if (await OutputLocation.ProblemAsync(output, blobService, cancellationToken) is { } outputProblem)
            return ExitCodes.Usage(outputProblem);
        PlannedJob<TSpec> planned;
        await using (var scope = host.Services.CreateAsyncScope())
        {
            planned = await plan(scope.ServiceProvider, cancellationToken);
        }
        return await WinTokHost.RunJobAsync(host, async (services, token) =>
        {
            await OutputLocation.EnsureExistsAsync(output, blobService, token);
            await using var scope = services.CreateAsyncScope();
            var job = await submit(scope.ServiceProvider, planned, token);
            Console.WriteLine(job.JobId);
            Console.WriteLine(describe(planned, job));
            Console.WriteLine($"Follow it with: wintok jobs show {job.JobId} --follow");
            return ExitCodes.Success;
        }, cancellationToken);
    }
}
