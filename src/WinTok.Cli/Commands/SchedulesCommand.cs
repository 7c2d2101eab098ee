using System.CommandLine;
using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Spectre.Console;
using WinTok.Cli.Hosting;
using WinTok.Data.Corpus;
using WinTok.Jobs;
using WinTok.Jobs.Evaluate;
using WinTok.Jobs.Schedules;
using WinTok.Messaging;
using WinTok.Results;
using WinTok.Worker.Hosting;

namespace WinTok.Cli.Commands;

/// <summary>
/// `wintok schedules add | list | show | pause | resume | remove | run-now`: evaluation schedules in the results
/// database (PostgreSQL from WINTOK_POSTGRES, else SQLite at ~/.wintok/results.db, or --db). The scheduler
/// (`wintok scheduler`, or `wintok worker` on one machine) fires them.
/// </summary>
internal static class SchedulesCommand
{
    private static readonly Dictionary<string, CorpusKind> Kinds = new(StringComparer.OrdinalIgnoreCase)
    {
        ["folder"] = CorpusKind.Folder,
        ["imagefolder"] = CorpusKind.ImageFolder,
        ["webdataset"] = CorpusKind.WebDataset,
    };

    public static Command Create() => new("schedules", "Evaluation schedules: add, list, show, pause, resume, remove, run now.")
    {
        CreateAdd(),
        CreateList(),
        CreateShow(),
        CreatePause(pause: true),
        CreatePause(pause: false),
        CreateRemove(),
        CreateRunNow(),
    };

    private static Option<string?> DatabaseOption() => new("--db")
    {
        Description = "SQLite results database (default: PostgreSQL from WINTOK_POSTGRES, else ~/.wintok/results.db).",
    };

    private static Argument<string> NameArgument() => new("NAME") { Description = "The schedule's name." };

    private static Command CreateAdd()
    {
        var name = NameArgument();
        var cron = new Option<string>("--cron") { Description = "When, as cron: minute hour day-of-month month day-of-week (\"0 3 * * *\" is 03:00 daily), or @daily.", Required = true };
        var timeZone = new Option<string>("--time-zone") { Description = "The IANA time zone the cron times are in.", DefaultValueFactory = _ => "Etc/UTC" };
        var checkpoint = new Option<string?>("--checkpoint") { Description = "Evaluate this one checkpoint at every slot (local or blob)." };
        var newest = new Option<string?>("--newest") { Description = "Evaluate the newest ckpt-ep{E}-iter{I}.pth under this folder or blob prefix, when it is new." };
        var every = new Option<string?>("--every") { Description = "Evaluate every ckpt-ep{E}-iter{I}.pth under this folder or blob prefix not yet evaluated." };
        var dataset = new Option<string>("--dataset") { Description = "The images to evaluate on: a folder, an ImageFolder or WebDataset tars, local or blob.", Required = true };
        var output = new Option<string>("--output") { Description = "Root of the evaluations' outputs; each job writes {slot}-{checkpoint name} below it.", Required = true };
        var metrics = new Option<string>("--metrics") { Description = $"Comma-separated: {string.Join(", ", EvaluationMetrics.All)}.", Required = true };
        var weights = new Option<string?>("--weights") { Description = "Folder of the metric networks' weight files (docs/evaluation.md)." };
        var textTower = new Option<string?>("--text-tower") { Description = "WinTok zero-shot: the HF SigLIP2 folder." };
        var precision = new Option<string>("--precision") { Description = "fp32 (the reference's) or bf16.", DefaultValueFactory = _ => EvaluationPrecision.Float32 }
            .AcceptOnlyFromAmong([.. EvaluationPrecision.All]);
        var datasetName = new Option<string?>("--dataset-name") { Description = "Name results are grouped by (default: the dataset folder's name)." };
        var kind = new Option<string?>("--kind") { Description = "Dataset layout (default: detected)." }.AcceptOnlyFromAmong([.. Kinds.Keys]);
        var filesPerPartition = new Option<int>("--files-per-partition") { Description = "Images per partition.", DefaultValueFactory = _ => 1000 };
        var missed = new Option<string>("--missed")
        {
            Description = "Slots missed while no scheduler ran: run-once (the newest runs on start) or skip. Recorded either way.",
            DefaultValueFactory = _ => MissedSlotPolicy.RunOnce,
        }.AcceptOnlyFromAmong([.. MissedSlotPolicy.All]);
        var baseline = new Option<string?>("--baseline") { Description = "Compare with this checkpoint's evaluation (default: the best so far of each metric)." };
        var threshold = new Option<string[]>("--threshold")
        {
            Description = "Allowed worsening per metric: NAME=VALUE (units), NAME=VALUE% (of the baseline) or NAME=off; repeatable. Defaults: "
                + string.Join(", ", MetricThresholds.Defaults.Select(t => $"{t.Metric}={t.Describe()}")) + ".",
            AllowMultipleArgumentsPerToken = false,
        };
        var webhook = new Option<string?>("--webhook") { Description = "POST regressions here as JSON (the URL may hold a token: it is stored, never logged)." };
        var paused = new Option<bool>("--paused") { Description = "Add it paused (resume with `wintok schedules resume`)." };
        var database = DatabaseOption();
        var model = new ModelArguments();
        var command = new Command("add", "Add an evaluation schedule.")
        {
            name, cron, timeZone, checkpoint, newest, every, dataset, output, metrics, weights, textTower, precision, datasetName, kind,
            filesPerPartition, missed, baseline, threshold, webhook, paused, database, model.Kind, model.Encoder, model.EncoderConfig,
        };
        command.SetAction((parse, cancellationToken) =>
        {
            var targets = new[] { (ScheduleTargetMode.Checkpoint, parse.GetValue(checkpoint)), (ScheduleTargetMode.Newest, parse.GetValue(newest)),
                (ScheduleTargetMode.Every, parse.GetValue(every)) }.Where(t => t.Item2 is not null).ToList();
            if (targets.Count != 1) return Task.FromResult(ExitCodes.Usage("give exactly one of --checkpoint, --newest and --every"));
            var (mode, target) = (targets[0].Item1, Location(targets[0].Item2!));
            if (ScheduleDefinition.NameProblem(parse.GetValue(name)!) is { } nameProblem) return Task.FromResult(ExitCodes.Usage(nameProblem));
            var schedule = CronSchedule.Parse(parse.GetValue(cron)!, parse.GetValue(timeZone)!);
            var metricList = EvaluationMetrics.Parse(parse.GetValue(metrics)!);
            if (parse.GetValue(filesPerPartition) < 1) return Task.FromResult(ExitCodes.Usage("--files-per-partition must be at least 1"));
            // The model kind is known only per checkpoint; the text tower is checked at each slot.
            EvaluationWeights.Check(metricList, "", Local(parse.GetValue(weights)), Local(parse.GetValue(textTower)));
            if (parse.GetValue(webhook) is { } url && !(Uri.TryCreate(url, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https"))
                return Task.FromResult(ExitCodes.Usage("--webhook must be an absolute http or https URL"));
            if ((LocalProblem(mode, target) ?? LocalProblem("dataset", Location(parse.GetValue(dataset)!))) is { } problem)
                return Task.FromResult(ExitCodes.Usage(problem));
            var evaluation = new ScheduledEvaluation(Location(parse.GetValue(dataset)!), Location(parse.GetValue(output)!), metricList,
                model.ToChoice(parse), Local(parse.GetValue(weights)), Local(parse.GetValue(textTower)), parse.GetValue(precision)!,
                parse.GetValue(datasetName), parse.GetValue(kind) is { } k ? Kinds[k] : null, parse.GetValue(filesPerPartition));
            var record = new NewSchedule(parse.GetValue(name)!, schedule.Text, parse.GetValue(timeZone)!, mode, target, evaluation.ToJson(),
                parse.GetValue(missed)!, parse.GetValue(baseline) is { } pinned ? Location(pinned) : null,
                ScheduleDefinition.ThresholdsToJson(MetricThresholds.Parse(parse.GetValue(threshold) ?? [])), parse.GetValue(webhook), parse.GetValue(paused));
            return RunAsync(parse.GetValue(database), async (services, token) =>
            {
                if (!await services.GetRequiredService<SchedulesRepository>().AddAsync(record, token))
                    return ExitCodes.Usage($"there is already a schedule named {record.Name} (remove it first)");
                var next = schedule.Next(services.GetRequiredService<TimeProvider>().GetUtcNow());
                Console.WriteLine($"Added schedule {record.Name}: {mode} {target}, {schedule.Text} ({record.TimeZone}){(record.Paused ? ", paused" : "")}.");
                if (next is { } at) Console.WriteLine($"Next slot: {Local(at, schedule)}. Try it now with: wintok schedules run-now {record.Name}");
                return ExitCodes.Success;
            }, cancellationToken);
        });
        return command;
    }

    private static Command CreateList()
    {
        var database = DatabaseOption();
        var command = new Command("list", "List the schedules with their next slot and last outcome.") { database };
        command.SetAction((parse, cancellationToken) => RunAsync(parse.GetValue(database), async (services, token) =>
        {
            var repository = services.GetRequiredService<SchedulesRepository>();
            var now = services.GetRequiredService<TimeProvider>().GetUtcNow();
            var table = new Table().Border(TableBorder.Simple)
                .AddColumns("name", "when", "evaluates", "next slot", "last slot", "state");
            foreach (var record in await repository.ListAsync(token))
            {
                var last = (await repository.ListSlotsAsync(record.Name, 1, token)).FirstOrDefault();
                var cron = TryParse(record);
                table.AddRow(Markup.Escape(record.Name), Markup.Escape($"{record.Cron} ({record.TimeZone})"), Markup.Escape($"{record.TargetMode} {record.Target}"),
                    cron is null ? "[red]invalid[/]" : Markup.Escape(cron.Next(now) is { } next ? Local(next, cron) : "never"),
                    Markup.Escape(last is null ? "-" : $"{last.SlotAt.UtcDateTime:yyyy-MM-dd HH:mm}Z {last.Outcome}"),
                    record.Paused ? "paused" : "active");
            }
            CliConsole.Create().Write(table);
            return ExitCodes.Success;
        }, cancellationToken));
        return command;
    }

    private static Command CreateShow()
    {
        var name = NameArgument();
        var slots = new Option<int>("--slots") { Description = "How many recent slots to list.", DefaultValueFactory = _ => 10 };
        var database = DatabaseOption();
        var command = new Command("show", "Show a schedule: what it evaluates, its recent slots and their jobs, its regressions.") { name, slots, database };
        command.SetAction((parse, cancellationToken) => RunAsync(parse.GetValue(database), async (services, token) =>
        {
            var repository = services.GetRequiredService<SchedulesRepository>();
            var record = await repository.GetAsync(parse.GetValue(name)!, token);
            if (record is null) return ExitCodes.Usage($"there is no schedule {parse.GetValue(name)}");
            var evaluation = ScheduledEvaluation.FromJson(record.EvaluationJson);
            var cron = TryParse(record);
            var now = services.GetRequiredService<TimeProvider>().GetUtcNow();
            var console = CliConsole.Create();
            var facts = new Grid().AddColumn().AddColumn();
            void Fact(string label, string value) => facts.AddRow(label, Markup.Escape(value));
            Fact("schedule", $"{record.Name} ({(record.Paused ? "paused" : "active")})");
            Fact("when", $"{record.Cron} ({record.TimeZone}); next {(cron?.Next(now) is { } next ? Local(next, cron) : "never")}");
            Fact("evaluates", $"{record.TargetMode} {record.Target}");
            Fact("dataset", $"{evaluation.Dataset} ({evaluation.DatasetName ?? "named after its folder"})");
            Fact("metrics", $"{string.Join(", ", evaluation.Metrics)} at {evaluation.Precision}");
            Fact("output", evaluation.Output);
            Fact("missed slots", record.MissedPolicy);
            Fact("baseline", record.Baseline ?? "best so far");
            Fact("thresholds", string.Join(", ", ScheduleDefinition.ThresholdsFromJson(record.ThresholdsJson).Select(t => $"{t.Metric} {t.Describe()} ({t.Direction} is better)")));
            Fact("webhook", record.WebhookUrl is { } url ? ScheduleDefinition.WebhookHost(url) : "none");
            console.Write(facts);

            var table = new Table().Border(TableBorder.Simple).AddColumns("slot (UTC)", "trigger", "outcome", "jobs", "by", "detail");
            foreach (var slot in await repository.ListSlotsAsync(record.Name, Math.Max(1, parse.GetValue(slots)), token))
            {
                table.AddRow(Markup.Escape($"{slot.SlotAt.UtcDateTime:yyyy-MM-dd HH:mm:ss}"), slot.TriggerKind, Markup.Escape(slot.Outcome),
                    Markup.Escape(string.Join(" ", slot.Jobs.Select(j => j.ToString()[..8]))), Markup.Escape(slot.Scheduler), Markup.Escape(slot.Detail ?? ""));
            }
            console.Write(table);
            var regressions = await repository.ListRegressionsAsync(new RegressionFilter(ScheduleName: record.Name, Limit: 20), token);
            if (regressions.Count > 0)
            {
                var found = new Table().Border(TableBorder.Simple).AddColumns("when (UTC)", "job", "metric", "value", "baseline", "allowed", "notified");
                foreach (var r in regressions)
                {
                    found.AddRow(Markup.Escape($"{r.CreatedAt.UtcDateTime:yyyy-MM-dd HH:mm}"), r.JobId.ToString()[..8], Markup.Escape(r.Metric),
                        Number(r.Value), Number(r.BaselineValue), Number(r.Threshold), r.NotifiedAt is null ? "no" : "yes");
                }
                console.Write(new Rule("[red]regressions[/]").LeftJustified());
                console.Write(found);
            }
            return ExitCodes.Success;
        }, cancellationToken));
        return command;
    }

    private static Command CreatePause(bool pause)
    {
        var name = NameArgument();
        var database = DatabaseOption();
        var command = new Command(pause ? "pause" : "resume", pause
            ? "Pause a schedule: no slot fires until it is resumed."
            : "Resume a paused schedule; slots that passed while paused do not fire.") { name, database };
        command.SetAction((parse, cancellationToken) => RunAsync(parse.GetValue(database), async (services, token) =>
        {
            var repository = services.GetRequiredService<SchedulesRepository>();
            if (await repository.SetPausedAsync(parse.GetValue(name)!, pause, token))
            {
                Console.WriteLine($"{(pause ? "Paused" : "Resumed")} schedule {parse.GetValue(name)}.");
                return ExitCodes.Success;
            }
            return await repository.GetAsync(parse.GetValue(name)!, token) is null
                ? ExitCodes.Usage($"there is no schedule {parse.GetValue(name)}")
                : ExitCodes.Usage($"schedule {parse.GetValue(name)} is already {(pause ? "paused" : "active")}");
        }, cancellationToken));
        return command;
    }

    private static Command CreateRemove()
    {
        var name = NameArgument();
        var database = DatabaseOption();
        var command = new Command("remove", "Remove a schedule and its slots; its jobs, evaluations and regressions stay.") { name, database };
        command.SetAction((parse, cancellationToken) => RunAsync(parse.GetValue(database), async (services, token) =>
        {
            if (!await services.GetRequiredService<SchedulesRepository>().RemoveAsync(parse.GetValue(name)!, token))
                return ExitCodes.Usage($"there is no schedule {parse.GetValue(name)}");
            Console.WriteLine($"Removed schedule {parse.GetValue(name)}.");
            return ExitCodes.Success;
        }, cancellationToken));
        return command;
    }

    private static Command CreateRunNow()
    {
        var name = NameArgument();
        var checkpoint = new Option<string?>("--checkpoint")
        {
            Description = "Evaluate this checkpoint under the schedule's settings instead (e.g. the baseline to pin).",
        };
        var database = DatabaseOption();
        var verbose = new Option<bool>("--verbose") { Description = "Log every step to stderr." };
        var command = new Command("run-now", "Run a schedule's slot now (what a cron slot would evaluate), and print the jobs it submitted.")
        {
            name, checkpoint, database, verbose,
        };
        command.SetAction((parse, cancellationToken) => RunNowAsync(parse.GetValue(name)!, parse.GetValue(checkpoint), parse.GetValue(database),
            parse.GetValue(verbose), cancellationToken));
        return command;
    }

    /// <summary>
    /// Plans and records a manual slot here. With RabbitMQ the jobs are published at once; on one machine the in-process
    /// queue is `wintok worker`'s, so the jobs are left unpublished and the worker's scheduler publishes them.
    /// </summary>
    private static async Task<int> RunNowAsync(string name, string? checkpoint, string? database, bool verbose, CancellationToken cancellationToken)
    {
        var builder = WinTokHost.CreateBuilder(verbose ? Verbosity.Normal : Verbosity.Quiet);
        var mode = EmbeddedDefaults.Apply(builder, database);
        builder.AddResultsStore();
        builder.AddJobQueue();
        builder.AddJobControl();
        builder.AddCheckpointInspector();
        builder.AddEvaluationSchedules(runScheduler: false);
        using var host = builder.Build();
        return await WinTokHost.RunJobAsync(host, async (services, token) =>
        {
            var record = await services.GetRequiredService<SchedulesRepository>().GetAsync(name, token);
            if (record is null) return ExitCodes.Usage($"there is no schedule {name}");
            var run = await services.GetRequiredService<ScheduleRunner>().RunNowAsync(ScheduleDefinition.From(record),
                checkpoint is null ? null : Location(checkpoint), publish: !mode.InProcessQueue, token);
            if (run.Recording is null) return Fail($"schedule {name}: storage or database unreachable; nothing recorded, try again");
            if (run.Recording == SlotRecording.AlreadyRecorded) return Fail($"schedule {name} already ran this second; try again");
            foreach (var job in run.Jobs) Console.WriteLine(job);
            Console.WriteLine($"Schedule {name}: {run.Outcome}{(run.Detail is { } detail ? $" ({detail})" : "")}, {run.Jobs.Count} jobs.");
            if (mode.InProcessQueue && run.Jobs.Count > 0)
                Console.WriteLine("They run on this machine's `wintok worker`, which picks them up within a minute.");
            return run.Outcome == SlotOutcome.Failed ? ExitCodes.Failed : ExitCodes.Success;
        }, cancellationToken);
    }

    /// <summary>Runs <paramref name="work"/> on a host with the results store and the schedules, on the servers or the embedded defaults.</summary>
    private static async Task<int> RunAsync(string? database, Func<IServiceProvider, CancellationToken, Task<int>> work, CancellationToken cancellationToken)
    {
        var builder = WinTokHost.CreateBuilder(Verbosity.Quiet);
        EmbeddedDefaults.Apply(builder, database);
        builder.AddResultsStore();
        using var host = builder.Build();
        return await WinTokHost.RunJobAsync(host, work, cancellationToken);
    }

    private static int Fail(string message)
    {
        Console.Error.WriteLine($"wintok: {message}");
        return ExitCodes.Failed;
    }

    /// <summary>A local path made absolute (workers and the scheduler may run elsewhere in the tree); blob locations as given.</summary>
    private static string Location(string location) => FileStores.IsBlobLocation(location) ? location : Path.GetFullPath(location);

    private static string? Local(string? path) => path is null ? null : Location(path);

    private static string? LocalProblem(string what, string location)
    {
        if (FileStores.IsBlobLocation(location)) return null;
        return what switch
        {
            ScheduleTargetMode.Checkpoint when !File.Exists(location) => $"checkpoint {location} does not exist",
            "dataset" when !Directory.Exists(location) => $"dataset {location} does not exist",
            _ => null, // a watched folder may appear with the first checkpoint
        };
    }

    private static CronSchedule? TryParse(ScheduleRecord record)
    {
        try
        {
            return CronSchedule.Parse(record.Cron, record.TimeZone);
        }
        catch (ArgumentException)
        {
            return null;
        }
    }

    /// <summary>A slot's time in its zone and in UTC; to the second when a six-field cron puts it off the minute.</summary>
    private static string Local(DateTimeOffset utc, CronSchedule cron)
    {
        var format = utc.Second == 0 ? "yyyy-MM-dd HH:mm" : "yyyy-MM-dd HH:mm:ss";
        var local = TimeZoneInfo.ConvertTime(utc, cron.Zone).ToString(format, CultureInfo.InvariantCulture);
        return $"{local} {cron.Zone.Id} ({utc.UtcDateTime.ToString(format, CultureInfo.InvariantCulture)}Z)";
    }

    private static string Number(double value) => value.ToString("0.#####", CultureInfo.InvariantCulture);
}
