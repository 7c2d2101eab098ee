using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using WinTok.Cli.Display;

namespace WinTok.Cli.Hosting;

internal static class CliHostExtensions
{
    /// <summary>What <c>wintok tokenize</c> adds to the in-process job: the runner that watches it to its end.</summary>
    public static IHostApplicationBuilder AddEmbeddedJobRunner(this IHostApplicationBuilder builder)
    {
        builder.Services.TryAddSingleton<EmbeddedJobRunner>();
        return builder;
    }
}
