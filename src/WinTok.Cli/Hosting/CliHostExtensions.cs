using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using WinTok.Cli.Jobs;

namespace WinTok.Cli.Hosting;

internal static class CliHostExtensions
{
    /// <summary>
    /// The worker's health file (<see cref="HealthFileOptions"/>). Call it before the queue's consumers are added: hosted
    /// services stop in reverse order, so the file outlives the drain.
    /// </summary>
    public static IHostApplicationBuilder AddHealthFile(this IHostApplicationBuilder builder)
    {
        var configuration = builder.Configuration;
        builder.Services.AddOptions<HealthFileOptions>()
            .BindConfiguration(HealthFileOptions.SectionName)
            .PostConfigure(options =>
            {
                // The Helm chart's names for the same two settings.
                if (configuration[$"{HealthFileOptions.SectionName}:{nameof(HealthFileOptions.HealthFile)}"] is null
                    && configuration["HealthFile:Path"] is { } path)
                {
                    options.HealthFile = path;
                }
                if (configuration[$"{HealthFileOptions.SectionName}:{nameof(HealthFileOptions.HealthFileInterval)}"] is null
                    && configuration["HealthFile:Interval"] is { } interval)
                {
                    options.HealthFileInterval = TimeSpan.Parse(interval, System.Globalization.CultureInfo.InvariantCulture);
                }
            })
            .ValidateOnStart();
        builder.Services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<HealthFileOptions>, HealthFileOptionsValidator>());
        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.AddHostedService<HealthFileService>();
        return builder;
    }

    /// <summary>What <c>wintok tokenize</c> adds to the in-process job: the runner that watches it to its end.</summary>
    public static IHostApplicationBuilder AddEmbeddedJobRunner(this IHostApplicationBuilder builder)
    {
        builder.Services.TryAddSingleton<EmbeddedJobRunner>();
        return builder;
    }
}
