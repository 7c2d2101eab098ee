using Spectre.Console;

namespace WinTok.Cli.Hosting;

/// <summary>The Spectre console the verbs write tables and progress to.</summary>
internal static class CliConsole
{
    /// <summary>Wide enough for a partitions table when stdout is a file or a pipe (Spectre assumes 80 columns there).</summary>
    private const int RedirectedWidth = 200;

    public static IAnsiConsole Create()
    {
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Out) });
        if (Console.IsOutputRedirected) console.Profile.Width = RedirectedWidth;
        return console;
    }
}
