"""A deterministic generator of news-like documents, for examples, tests and benchmarks.

Each document follows one topic (a takeover, a state visit, an arrest, a storm...). A
document draws its cast once (people, companies, places, dates, amounts) and then renders a
lead sentence and several follow-ups of that topic, so names recur across sentences the way
they do in news copy: full name on first mention, surname afterwards.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

MIN_SENTENCES = 3
MAX_SENTENCES = 8
MIN_WORDS = 80
MAX_WORDS = 150

# --- fillers -------------------------------------------------------------------------------


def _split(words: str) -> tuple[str, ...]:
    return tuple(words.split())


FEMALE_NAMES = _split(
    "Maria Sarah Aisha Ingrid Yuki Elena Priya Fatima Claire Sofia Hannah Amara Lucia Ana "
    "Mei Katarzyna Grace Leila Nadia Chloe Isabel Zainab Emma Olga Rosa Beatriz Ifeoma "
    "Saanvi Astrid"
)
MALE_NAMES = _split(
    "James Daniel Rafael Tomasz Kenji Oluwaseun Marco Lars Ahmed Pierre Mateo Viktor Samuel "
    "Arjun Hiroshi Diego Felix Emeka Jonas Omar Andrei Liam Carlos Nikolai Wei Kwame Tobias"
)
SURNAMES = _split(
    "Alvarez Brennan Castellano Dubois Eriksen Fischer Gallagher Haddad Jansen Kowalski "
    "Lindqvist Moreau Nakamura Okafor Quintero Rahman Schneider Tanaka Varga Whitfield "
    "Yilmaz Zhang Mensah Ortega Bianchi Novak Hughes Kapoor Adeyemi Sorensen Takahashi "
    "Marchetti O'Brien Delgado Kim Nguyen Hartmann Costa Ferreira Kruger Lambert Morales "
    "Patel Reyes Silva Walsh Osei Andersson Barros Horvat Molina Fernandes Iyer Kaminski "
    "Lucas"
)
COMPANY_STEMS = _split(
    "Norvale Brightwater Kestrel Halcyon Meridian Ironbridge Bluefin Castor Silverline "
    "Greenfield Northstar Redwood Aldgate Vantage Orion Summit Crestview Harbor Lumen "
    "Pinecrest Stellar Tidewater Westbrook Zenith Ashford Copperleaf Falcon Granite "
    "Highmark Solano Verity Arden Corvid Helix Marlow Quayside"
)
# (suffix, how the press describes such a firm, what it sells)
COMPANY_KINDS = (
    ("Systems", "software maker", "accounting software"),
    ("Energy", "energy group", "wind turbines"),
    ("Pharmaceuticals", "drugmaker", "generic medicines"),
    ("Logistics", "logistics firm", "delivery services"),
    ("Capital", "investment firm", "investment funds"),
    ("Foods", "food producer", "frozen meals"),
    ("Motors", "carmaker", "electric cars"),
    ("Networks", "telecom operator", "mobile data plans"),
    ("Robotics", "robotics company", "warehouse robots"),
    ("Bank", "lender", "mortgages"),
    ("Airways", "airline", "regional flights"),
    ("Materials", "chemicals maker", "industrial coatings"),
    ("Analytics", "data company", "analytics tools"),
    ("Semiconductors", "chipmaker", "memory chips"),
    ("Insurance", "insurer", "car insurance"),
    ("Retail", "department store chain", "household goods"),
)
LEGAL_FORMS = ("Inc.", "Corp.", "Ltd.", "Co.", "plc", "AG", "SA", "NV")
NEW_PRODUCTS = (
    "a budget smartphone",
    "an electric delivery van",
    "a home battery system",
    "a subscription streaming service",
    "a low-cost laptop for schools",
    "a hydrogen-powered bus",
    "a smart thermostat",
    "a payment app for small businesses",
    "a compact electric scooter",
    "a cloud security service",
)
# (city, country); countries that take an article carry it.
PLACES = (
    ("Lisbon", "Portugal"),
    ("Porto", "Portugal"),
    ("Madrid", "Spain"),
    ("Valencia", "Spain"),
    ("Berlin", "Germany"),
    ("Munich", "Germany"),
    ("Paris", "France"),
    ("Lyon", "France"),
    ("Rome", "Italy"),
    ("Milan", "Italy"),
    ("Warsaw", "Poland"),
    ("Krakow", "Poland"),
    ("Vienna", "Austria"),
    ("Prague", "the Czech Republic"),
    ("Stockholm", "Sweden"),
    ("Oslo", "Norway"),
    ("Helsinki", "Finland"),
    ("Dublin", "Ireland"),
    ("London", "Britain"),
    ("Manchester", "Britain"),
    ("Amsterdam", "the Netherlands"),
    ("Rotterdam", "the Netherlands"),
    ("Brussels", "Belgium"),
    ("Athens", "Greece"),
    ("Istanbul", "Turkey"),
    ("Cairo", "Egypt"),
    ("Nairobi", "Kenya"),
    ("Lagos", "Nigeria"),
    ("Accra", "Ghana"),
    ("Johannesburg", "South Africa"),
    ("Mumbai", "India"),
    ("Chennai", "India"),
    ("Jakarta", "Indonesia"),
    ("Manila", "the Philippines"),
    ("Seoul", "South Korea"),
    ("Busan", "South Korea"),
    ("Tokyo", "Japan"),
    ("Osaka", "Japan"),
    ("Sydney", "Australia"),
    ("Melbourne", "Australia"),
    ("Toronto", "Canada"),
    ("Vancouver", "Canada"),
    ("Chicago", "the United States"),
    ("Houston", "the United States"),
    ("Boston", "the United States"),
    ("Mexico City", "Mexico"),
    ("Bogota", "Colombia"),
    ("Lima", "Peru"),
    ("Santiago", "Chile"),
    ("Buenos Aires", "Argentina"),
    ("Sao Paulo", "Brazil"),
    ("Hanoi", "Vietnam"),
    ("Bangkok", "Thailand"),
    ("Dubai", "the United Arab Emirates"),
)
MINISTER_ROLES = (
    "foreign minister",
    "trade minister",
    "economy minister",
    "prime minister",
    "defence minister",
    "energy minister",
)
HOST_TITLES = ("President", "Prime Minister", "Chancellor", "Foreign Minister")
REGIONAL_TITLES = ("Governor", "Regional President", "Prime Minister", "Interior Minister")
PARTIES = (
    "Social Democratic Alliance",
    "National Renewal Party",
    "Green Forum",
    "Liberal Union",
    "People's Movement",
    "Democratic Centre",
    "Civic Platform for Change",
    "Labour Coalition",
)
TEAM_NICKNAMES = _split(
    "Rovers United Mariners Comets Wolves Lions Rangers Athletic Harriers Falcons Wanderers"
)
STORM_NAMES = _split(
    "Ambrose Brenna Corwin Delphine Evander Fenna Gideon Hollis Isolde Jareth Katrin Leopold"
)
CRIMES = (
    "fraud",
    "money laundering",
    "armed robbery",
    "bribery",
    "tax evasion",
    "drug trafficking",
    "embezzlement",
    "insider trading",
)
MINISTRIES = (
    "finance ministry",
    "health ministry",
    "transport ministry",
    "interior ministry",
    "education ministry",
)
QUARTERS = ("first quarter", "second quarter", "third quarter", "fourth quarter")
NUMBER_WORDS = _split("two three four five six seven eight nine eleven twelve")
MONTHS = _split(
    "January February March April May June July August September October November December"
)

# --- templates -----------------------------------------------------------------------------
# Every topic has leads (one opens the document) and follow-ups (drawn without repeats).
# Slots: p1..p4 are people (p1_last: surname after the first mention, p1_he / p1_his:
# pronouns), co1..co3 companies, city/country (where it happens), city2/country2 (a second
# country), city3 (anywhere), on_day ("on Tuesday"), day2 (a later weekday), and amounts.
# "[a|b|c]" picks one of the alternatives each time the sentence is used.


@dataclass(frozen=True)
class Topic:
    leads: tuple[str, ...]
    follow_ups: tuple[str, ...]


TOPICS: dict[str, Topic] = {
    "acquisition": Topic(
        leads=(
            "{co1}, the {co1_sector} based in {city}, has agreed to buy {co2} for {money1}, the "
            "companies said {on_day}.",
            "{co1} said {on_day} it would [acquire|buy|take over] its smaller rival {co2} in a "
            "deal [worth|valued at] {money1}.",
            "Shareholders of {co2} approved a {money1} takeover by {co1} {on_day}, clearing the "
            "way for one of the largest deals in the industry this year.",
            "{co2} was acquired by {co1} for {money1} in cash and shares, ending months of "
            "speculation about the future of the {co2_sector}.",
            "{co1} [agreed|moved] to purchase a majority stake in {co2} {on_day}, "
            "[betting|wagering] that demand for {co2_product} will keep growing in {country}.",
        ),
        follow_ups=(
            "The deal is expected to close in the {quarter} of {year}, subject to approval by "
            "regulators in {country} and {country2}.",
            "{p1}, the chief executive of {co1}, said the purchase would give the company access "
            "to new customers in {country2}.",
            '"This is a rare chance to combine two businesses that fit together naturally," '
            "{p1_last} [told reporters in {city}|said in a statement|told analysts on a "
            "conference call].",
            "Analysts at {co3} said the price represented a premium of about {pct1} over the last "
            "closing price of {co2}.",
            "{co2} employs roughly {jobs} people, most of them at sites near {city2}.",
            "The competition authority in {country} has not yet said whether it will [open an "
            "in-depth review|examine the deal more closely|look into the purchase].",
            "Shares of {co1} [fell|slipped|dropped] {pct2} in [morning|early|afternoon] trading, "
            "while {co2} [jumped|surged|climbed] {pct1}.",
            "{co1} will finance the acquisition with cash on hand and new debt, according to a "
            "regulatory filing.",
            "The company did not [disclose|say] how many jobs would be [cut|lost] after the "
            "merger.",
            "{p2}, who founded {co2} in {founded}, will stay on as an adviser for at least two "
            "years.",
            "Earlier this year, {co1} sold its consumer unit to {co3} for {money_m}.",
            "{co1} was advised on the transaction by {co3_legal}",
            "[Unions|Worker representatives] at {co2} said they had not been consulted and asked "
            "for guarantees that no plants would close.",
            "It is the [second|third] acquisition by {co1} since {p1_last} took charge in "
            "{founded_recent}.",
            "A rival offer from {co3} was rejected by the board of {co2} in {month_past} as too "
            "low.",
        ),
    ),
    "visit": Topic(
        leads=(
            "{minister_title} {p1} of {country2} arrived in {city} {on_day} for a two-day visit "
            "aimed at strengthening trade ties with {country}.",
            "{p1}, the {minister_role} of {country2}, visited {city} and met {host_title} {p2} to "
            "discuss energy and security.",
            "{host_title} {p2} hosted a delegation from {country2} in {city} {on_day}, the first "
            "such visit in nearly a decade.",
            "[Leaders|Senior officials] from {country} and {country2} met in {city} {on_day} for "
            "talks on trade, migration and energy supplies.",
        ),
        follow_ups=(
            "The two sides signed agreements on [transport, education and renewable energy|health "
            "care and tourism|customs, ports and shipping], officials said.",
            "{p1}, who led the delegation, also met business leaders and toured a port on the "
            "outskirts of {city}.",
            '"We have agreed to work much more closely on energy," {p1_last} said at a joint news '
            "conference.",
            "The talks did not produce a breakthrough on a long-running dispute over fishing "
            "rights, diplomats said.",
            "[Protesters|A small group of demonstrators|Several hundred protesters] gathered "
            "outside the [foreign ministry|parliament building|venue] during the meeting but were "
            "kept back by police.",
            "{p2_last} is expected to make a return visit to {city2} in {month_next}.",
            "Trade between {country} and {country2} reached {money1} last year, according to "
            "government figures.",
            "The visit had been postponed [twice|once|several times] because of [scheduling "
            "conflicts|the election campaign|security concerns].",
            "{p1_last} left for {city3} on {day2}, where {p1_he} will attend a regional summit.",
            "Officials from both countries described the atmosphere as [warm and "
            "constructive|friendly but cautious|frank].",
            "{p1}, who led the delegation, was accompanied by the heads of several large "
            "companies, including {co1} and {co2}.",
            "No agreement was reached on visas for students, although both sides promised to "
            "return to the issue.",
            "A state dinner was held in honour of the visitors at the presidential palace in "
            "{city}.",
            "{country} is the [largest|second-largest|third-largest] trading partner of "
            "{country2} in the region.",
        ),
    ),
    "arrest": Topic(
        leads=(
            "Police in {city} arrested {num_word} people {on_day} in connection with a series of "
            "burglaries targeting [jewellery shops|pharmacies|petrol stations].",
            "A {age}-year-old man was arrested by police in {city} on suspicion of {crime}, "
            "officials said {on_day}.",
            "Detectives in {city} detained {p3}, a former manager at {co1}, as part of an "
            "investigation into {crime}.",
            "[Officers|Investigators] in {city} broke up a gang suspected of {crime} {on_day}, "
            "arresting {num_word} people in raids across the city.",
        ),
        follow_ups=(
            "A suspect was charged with {crime} and is due to appear before a judge on {day2}.",
            "A police spokesperson, {p2}, said officers had seized cash, laptops and several "
            "mobile phones during the raids.",
            '"We believe the group operated across several regions," {p2_last} told reporters.',
            "[Nobody|No one] was [injured|hurt] during the [arrests|operation|raids].",
            "Prosecutors did not say how much money [was involved|had been stolen|was at stake].",
            "The investigation began in {month_past} after a tip from a bank employee.",
            "{co1} said it was cooperating fully with the authorities.",
            "If convicted, those charged face up to {years} years in prison.",
            "[Two|Three|Several] other people were questioned and later released without charge.",
            "Officers searched {num_word} properties in {city} and {city_near} early in the "
            "morning.",
            "Investigators were helped by [police in {country2}|a European police agency|tax "
            "inspectors], who tracked payments through several bank accounts.",
            "Lawyers for the accused said their clients denied all the allegations.",
            "A court in {city} will decide on {day2} whether the suspects can be released on bail.",
            "The arrests followed complaints from [dozens of|more than a hundred|several] shop "
            "owners in the city centre.",
        ),
    ),
    "agreement": Topic(
        leads=(
            "{country} and {country2} signed an agreement {on_day} to build a {km} km pipeline "
            "linking their gas networks.",
            "The governments of {country} and {country2} agreed to cut tariffs on farm goods "
            "under a deal signed in {city}.",
            "The parliament of {country} approved a defence cooperation treaty with {country2} by "
            "{votes_for} votes to {votes_against}.",
            "Negotiators from {country} and {country2} reached a deal {on_day} on sharing water "
            "from the rivers that cross their border.",
        ),
        follow_ups=(
            "The agreement was signed by {p1} and {p2}, the foreign ministers of the two "
            "countries.",
            "Under the deal, {country2} will supply up to {num_word} million tonnes of grain a "
            "year.",
            "Opposition lawmakers criticized the terms and said the agreement had been negotiated "
            "[in secret|too quickly|without consulting farmers].",
            "The treaty must still be ratified by the parliament of {country2}.",
            "Officials said construction could begin as early as {month_future}.",
            "Neighbouring governments [welcomed|praised|cautiously welcomed] the agreement in "
            "brief statements.",
            '{p1_last} called the deal "a practical step" that would lower prices for consumers.',
            "Negotiations had stalled in {year_prev} over the question of who would pay for "
            "maintenance.",
            "Business groups in {city2} said the accord would make exports cheaper and faster.",
            "The deal will be reviewed after five years and can be extended by both sides.",
            "Environmental groups warned that the project had not been properly assessed.",
            "{p2} said {country2} would not accept any changes to the text before ratification.",
            "Talks on the agreement began in {month_past} and took [eleven|fourteen|nineteen] "
            "rounds to complete.",
        ),
    ),
    "storm": Topic(
        leads=(
            "{storm} swept across the region around {city} early {on_day}, bringing winds of up "
            "to {kmh} km/h and heavy rain.",
            "At least {dead} people were killed and hundreds more were evacuated after floods "
            "swept through towns around {city}.",
            "Torrential rain caused rivers to burst their banks in and around {city} {on_day}, "
            "cutting power to more than {homes} homes.",
        ),
        follow_ups=(
            "Rescue teams were searching for {num_word} people who remain missing, the civil "
            "protection agency said.",
            "Schools and the main airport were closed, and several flights to {city2} were "
            "cancelled.",
            "The storm damaged [roads, bridges and hundreds of houses|power lines and farm "
            "buildings|schools, shops and a hospital] across the region.",
            '"The water rose faster than anyone expected," said {p1}, a [shop owner|teacher|taxi '
            "driver] in the old town.",
            "{regional_title} {p2} declared a state of emergency in the region and promised "
            "financial help for families.",
            "Forecasters warned that more rain was expected [over the weekend|later in the "
            "week|on {day2}].",
            "Electricity had not been restored in several districts by {day2} evening.",
            "The government sent [soldiers and helicopters|boats and army trucks|hundreds of "
            "firefighters] to help with the evacuation.",
            "Insurers estimated the damage at around {money_m}.",
            "Rail services between {city} and {city_near} were suspended after a landslide "
            "blocked the line.",
            "Volunteers handed out [blankets, food and drinking water|hot meals and dry clothes] "
            "at sports halls that were turned into shelters.",
            "It was the worst flooding in the area since {year_old}, according to the weather "
            "service.",
            "{p2_last} visited the worst-hit neighbourhoods on {day2} and was criticized by "
            "residents for the slow response.",
            "Farmers said large areas of [crops|vineyards|wheat] had been destroyed just weeks "
            "before the harvest.",
        ),
    ),
    "election": Topic(
        leads=(
            "Voters in {country} elected {p1} as president {on_day}, giving the {party1} its "
            "first victory in more than a decade.",
            "{p1} of the {party1} won the mayoral election in {city} with {pct_vote} of the vote, "
            "official results showed.",
            "The {party1}, led by {p1}, is projected to win the most seats in the parliamentary "
            "election in {country}, according to an exit poll.",
            "{p1}, a former [teacher|lawyer|economist|trade union leader], won a "
            "[narrow|clear|surprise] victory in the presidential runoff in {country} {on_day}.",
        ),
        follow_ups=(
            "Turnout was {pct_turnout}, slightly higher than at the last election in {year_prev}.",
            "{p2}, the candidate of the {party2}, conceded defeat and congratulated {p1_last} on "
            "{p1_his} victory.",
            "{p1_last} promised to lower energy bills and to build {homes} new homes within four "
            "years.",
            "The {party2} did not accept the result and said it would ask for a recount in "
            "several districts.",
            "Election observers said the vote was largely peaceful, although some polling "
            "stations [opened late|ran out of ballot papers|closed early].",
            "Coalition talks are expected to begin [next week|within days|after the final count].",
            '"Tonight voters chose change," {p1_last} told cheering supporters in {city}.',
            "Final results will be published by the electoral commission on {day2}.",
            "Campaigning was dominated by rising prices and a shortage of affordable housing.",
            "{p1_last}, {age_exec}, will be sworn in on {day_of_month} {month_next}.",
            "The outgoing government was not re-elected after two terms marked by strikes and a "
            "weak economy.",
            "[Several|Three|Four] small parties failed to reach the threshold needed to enter "
            "parliament.",
            "Markets reacted calmly, and the currency of {country} was little changed against the "
            "dollar.",
        ),
    ),
    "sports": Topic(
        leads=(
            "{team1} beat {team2} {score} {on_day} to move to the top of the league table.",
            "{team2} were beaten {score} by {team1} in the cup semi-final in {city}.",
            "{p1} scored twice as {team1} came from behind to defeat {team2} {score}.",
            "{team1} [secured|clinched|sealed] a place in the final after a {score} win over "
            "{team2} in front of a full stadium in {city}.",
        ),
        follow_ups=(
            "{p1} opened the scoring in the {minute}th minute with a [header from a corner|low "
            "shot from the edge of the area|penalty].",
            "{team2} had a goal disallowed for offside [shortly before half-time|early in the "
            "second half|in stoppage time].",
            '"We did not play well in the first half, but the players showed real character," '
            "said {team1} coach {p2}.",
            "The match was watched by a crowd of {crowd} at the stadium in {city}.",
            "{team2} have now lost {num_small} of their last five matches.",
            "{team1} will face {team3} in the final in {month_next}.",
            "Defender {p3} was sent off after a second yellow card.",
            "{team2} coach {p4} refused to criticize the referee after the game.",
            "The win was the fourth in a row for {team1}, who have not lost since {month_past}.",
            "Goalkeeper {p3} made several important saves to keep {team2} in the game.",
            "The second half was delayed for [ten|fifteen|several] minutes after fans threw "
            "flares onto the pitch.",
            "{team1} were without their captain, who has not played since injuring a knee in "
            "{month_past}.",
            "The club was bought by an investment group from {country2} last year and has spent "
            "heavily on new players.",
        ),
    ),
    "earnings": Topic(
        leads=(
            "{co1} reported a net profit of {money_m} for the {quarter}, up {pct1} from a year "
            "earlier, helped by strong demand for its {co1_product}.",
            "{co1}, the {co1_sector}, said {on_day} its revenue fell {pct1} in the {quarter} as "
            "customers in {country} cut spending.",
            "Shares of {co1} rose {pct2} on {day1} after the company raised its full-year profit "
            "forecast.",
            "{co1} swung to a loss of {money_m} in the {quarter}, [hurt|weighed down] by "
            "restructuring costs and weak sales in {country2}.",
        ),
        follow_ups=(
            "Revenue rose to {money1}, beating the expectations of analysts.",
            "Chief financial officer {p1} said the company would keep investing in new factories "
            "despite higher interest rates.",
            "{co1} did not change its dividend, which remains at {cents} cents per share.",
            "The company plans to hire about {jobs} engineers in {city} over the next two years.",
            '"Demand in {country2} was weaker than we had hoped," {p1_last} said on a call with '
            "analysts.",
            "Costs for [raw materials and energy|transport and wages|components] climbed sharply "
            "during the period.",
            "Analysts at {co3} said the results showed the company was gaining market share.",
            "{co1} also announced a share buyback of up to {money_m}.",
            "Sales of {co1_product} in {country2} grew by {pct2}, the fastest pace in two years.",
            "The accounts for the period were audited by {co3_legal}",
            "The company warned that [a stronger currency|new trade tariffs|weak consumer demand] "
            "would reduce profits in the rest of the year.",
            "{co1} cut its workforce by {pct2} last year and closed a plant near {city_near}.",
            "Its main rival, {co2}, is due to report results on {day2}.",
        ),
    ),
    "launch": Topic(
        leads=(
            "{co1} launched {new_product} in {city} {on_day}, its first new product in three "
            "years.",
            "{co1} will open a {money_m} factory near {city}, creating about {jobs} jobs, the "
            "company announced {on_day}.",
            "{co1} unveiled plans to invest {money1} in data centres across {country} by "
            "{year_next}.",
            "{co1} [introduced|presented|showed off] {new_product} at a trade fair in {city} "
            "{on_day}, aiming at younger customers.",
        ),
        follow_ups=(
            "The company said the first customers in {country2} would be served in {month_next}.",
            "Production is scheduled to start in {month_future}.",
            "{p1}, who leads the operations of {co1} in {country}, said local suppliers would "
            "provide most of the parts.",
            "Local officials welcomed the investment, which was supported by [a tax incentive|a "
            "regional development fund|a government grant].",
            "Critics said the project would put pressure on [water supplies|the electricity "
            "grid|housing] in the region.",
            "The company did not say how much the project would cost taxpayers.",
            "{co2}, its main competitor, launched a similar product last year.",
            "The new site will be powered mainly by solar energy, according to {co1}.",
            "{p1_last} said the company had chosen {city} because of its skilled workforce and "
            "good rail links.",
            "Batteries and other key parts will be supplied by {co2_legal}",
            "Early reviews praised the [design|battery life|ease of use] but complained about the "
            "[price|weight|limited choice of colours].",
            "{co1} expects the new business to contribute {pct1} of its revenue by {year_next}.",
            "Regulators in {country2} have not yet approved the product for sale.",
        ),
    ),
    "court": Topic(
        leads=(
            "A court in {city} fined {co1} {money_m} {on_day} for breaking competition rules.",
            "{co1} was sued by a group of investors who accuse it of misleading them about its "
            "finances.",
            "{co2} filed a lawsuit against {co1} in {city} {on_day}, claiming the {co1_sector} "
            "had copied its patented technology.",
            "A judge in {city} ruled {on_day} that {co1} must compensate {homes} customers "
            "affected by a data breach.",
        ),
        follow_ups=(
            "{co1} denied any wrongdoing and said it would appeal.",
            "{p2}, a lawyer representing the plaintiffs, said the ruling sent a clear message to "
            "the industry.",
            "The case was filed in {month_past} and has been closely watched by consumer groups.",
            "A spokesperson for {co1} declined to comment on the details of the case.",
            "Regulators in {country2} are investigating similar complaints.",
            "The court rejected an earlier request by {co1} to have the case [dismissed|moved to "
            "another city|suspended].",
            "Damages will be decided at a separate hearing in {month_next}.",
            "{p1}, the chief executive of {co1}, is expected to testify before the court.",
            "The company has set aside {money_m} to cover possible legal costs.",
            "Consumer groups said the [penalty|outcome] was too [small|weak] to change the "
            "behaviour of large companies.",
            "The judge criticized {co1} for failing to hand over documents on time.",
            "A similar case against {co3} was settled out of court in {year_prev}.",
        ),
    ),
    "strike": Topic(
        leads=(
            "Thousands of workers went on strike in {city} {on_day} to demand higher wages, "
            "halting buses and trains across the city.",
            "Farmers blocked roads around {city} with tractors {on_day} to protest against cuts "
            "to [subsidies|fuel rebates].",
            "Dock workers at the port of {city} walked off the job {on_day} after talks with "
            "employers broke down.",
            "[Nurses|Teachers|Airport staff] in {city} staged a [one-day|48-hour|three-day] "
            "walkout {on_day} over pay and working hours.",
        ),
        follow_ups=(
            "The union, led by {p1}, said the action would continue until the government made a "
            "new offer.",
            "Police estimated the crowd at about {crowd}, while organisers said it was much "
            "larger.",
            "The labour ministry said it was ready to resume negotiations on {day2}.",
            '"We cannot live on these incomes any more," said {p2}, one of the protesters.',
            "[Several|Many|Dozens of] shops in the city centre closed early as a precaution.",
            "The protest remained [peaceful|calm], and [no arrests were reported|police made no "
            "arrests].",
            "Employers described the demands as [unrealistic|unaffordable] and warned of [job "
            "losses|higher prices].",
            "A similar strike in {month_past} lasted {num_small} days.",
            "The government offered a pay rise of {pct2}, which the union rejected as far too low.",
            "[Commuters|Travellers] were stranded [at stations|on the roads], and many people "
            "worked from home.",
            "{p1}, who speaks for the protesters, accused ministers of ignoring the rising cost "
            "of [living|fuel|fertiliser].",
            "Further protests are planned for {day2} unless an agreement is reached.",
        ),
    ),
    "appointment": Topic(
        leads=(
            "{co1} appointed {p1} as its new chief executive {on_day}, replacing {p2}, who is "
            "retiring after eight years.",
            "{p2} stepped down as chief executive of {co1} {on_day}, and the board named {p1} as "
            "interim leader.",
            "The board of {co1} named {p1} chair, effective from {month_next}.",
            "{co1} has hired {p1}, a former executive at {co3}, to lead its business in "
            "{country2}.",
        ),
        follow_ups=(
            "{p1_last} previously ran the business of the company in {country2} and joined {co1} "
            "in {founded}.",
            "Investors welcomed the change, and the shares rose {pct1}.",
            "{p2_last} will remain as an adviser until the end of the year.",
            "The company did not give a reason for the timing of the [announcement|change].",
            '"I am honoured to take on this role at such an important moment," {p1_last} said in '
            "a statement.",
            "Analysts said the new leader would need to [cut costs quickly|win back investors|fix "
            "the struggling retail business].",
            "{p1_last}, {age_exec}, studied engineering in {city2} before moving into management.",
            "Before joining {co1}, {p1_last} spent a decade at {co3_legal}",
            "The search for a successor took more than a year, people familiar with the matter "
            "said.",
            "{co1} has struggled with falling sales and a failed expansion into {country2}.",
            "The appointment still has to be approved by shareholders at the annual meeting in "
            "{month_next}.",
        ),
    ),
    "conflict": Topic(
        leads=(
            "Gunmen attacked a military convoy in the north of {country} {on_day}, killing "
            "{num_word} soldiers, the army said.",
            "Militants fired rockets at a border post near {city}, wounding {num_word} guards.",
            "Security forces clashed with an armed group outside {city} {on_day}, officials said.",
            "[Several|Two|Three] explosions damaged a power station near {city} overnight, "
            "leaving parts of the city without electricity.",
        ),
        follow_ups=(
            "No group has [claimed responsibility for|said it carried out] the attack.",
            "The wounded were taken to a hospital in {city}.",
            "{host_title} {p1} condemned the violence and ordered an investigation.",
            "Residents said they heard [explosions|gunfire] for more than [an hour|two hours].",
            "The army said it had killed {num_small} attackers and arrested several others.",
            "The region has seen a rise in attacks since {month_past}.",
            "Roads leading to the area were closed, and a curfew was imposed [overnight|until "
            "further notice].",
            "Aid agencies warned that [thousands of|hundreds of] families had fled their homes.",
            "The government of {country2} offered to help with the investigation.",
            "{p2}, a local official, said the attackers had escaped across the hills.",
        ),
    ),
    "health": Topic(
        leads=(
            "Researchers at the University of {city} have developed a blood test that can detect "
            "several types of cancer early, according to a study published {on_day}.",
            "Scientists in {city} said {on_day} that a new drug had slowed memory loss in "
            "patients with early Alzheimer's disease in a clinical trial.",
            "A team led by {p1} at a hospital in {city} has found that a cheap blood pressure "
            "pill may lower the risk of stroke.",
        ),
        follow_ups=(
            "The study followed {homes} patients over four years.",
            "{p1}, who led the research, said larger trials were needed before the method could "
            "be used in hospitals.",
            "The results were published in [a medical journal|a leading journal] after review by "
            "independent scientists.",
            "The work was funded by {co1} and a national research council.",
            "Independent experts said the results were [promising|encouraging] but cautioned "
            "against exaggerating them.",
            "Hospitals in {city} and {city2} will take part in the next phase of the trial.",
            "The health ministry of {country} said it would follow the research closely.",
            "Side effects were [mild|rare] and did not differ much between the groups, the "
            "authors wrote.",
            "{co1} said it would apply for approval in {country} by the end of {year_next}.",
            "Patient groups welcomed the findings but asked for the treatment to be made "
            "affordable.",
        ),
    ),
    "transport": Topic(
        leads=(
            "The city council of {city} approved plans for a new tram line linking the airport "
            "with the city centre.",
            "A new bridge over the river in {city} was opened to traffic {on_day}, two years "
            "behind schedule.",
            "The government of {country} announced a {money1} plan to build a high-speed rail "
            "line between {city} and {city_near}.",
        ),
        follow_ups=(
            "The total cost is estimated at about {money_m}.",
            "Mayor {p1} said the project would cut travel times by half.",
            "Construction was delayed by [disputes with contractors and rising material "
            "costs|archaeological finds along the route|a shortage of skilled workers].",
            "Residents living near the route have complained about [noise|dust and traffic jams].",
            "{co1} won the contract for the project after a public tender.",
            "Cyclists and pedestrians will get separate lanes, the [council|city] said.",
            "The engineering work will be carried out by {co2_legal}",
            "Opposition councillors said the money should have been spent on [buses|schools|road "
            "repairs] instead.",
            "About {crowd} passengers a day are expected to use the new link.",
            "The first phase is due to open in {month_future}.",
        ),
    ),
}
CLOSERS = (
    "Further details were not immediately available.",
    "The report could not be independently verified.",
    "More information is expected to be released later this week.",
    "Officials are due to give an update on {day2}.",
)


# --- generation ----------------------------------------------------------------------------


def generate_documents(n: int, seed: int = 7) -> list[dict[str, str]]:
    """`n` news-like documents, identical for the same `n` and `seed`."""
    if n < 0:
        raise ValueError(f"n must be >= 0, not {n}")
    rng = random.Random(seed)
    topics = sorted(TOPICS)
    return [_document(rng, index, rng.choice(topics)) for index in range(1, n + 1)]


def write_jsonl(docs: Iterable[Mapping[str, object]], path: str | Path) -> int:
    """Write one JSON object per line; returns the number written."""
    count = 0
    with Path(path).open("w", encoding="utf-8") as out:
        for doc in docs:
            out.write(json.dumps(doc, ensure_ascii=False) + "\n")
            count += 1
    return count


def _document(rng: random.Random, index: int, topic_name: str) -> dict[str, str]:
    published = date(2025, 1, 6) + timedelta(days=rng.randrange(350))
    slots = _Slots(_draw_cast(rng, published))
    topic = TOPICS[topic_name]
    templates = [rng.choice(topic.leads)]
    follow_ups = list(topic.follow_ups)
    rng.shuffle(follow_ups)
    target = rng.randint(MIN_WORDS, MAX_WORDS)
    sentences = [_render(templates[0], slots, rng)]
    words = _words(sentences[0])
    for template in follow_ups:
        if len(sentences) >= MAX_SENTENCES:
            break
        if len(sentences) >= MIN_SENTENCES and words >= target:
            break
        mentioned = set(slots.mentioned)
        sentence = _render(template, slots, rng)
        if len(sentences) >= MIN_SENTENCES and words + _words(sentence) > MAX_WORDS:
            slots.mentioned = mentioned  # not used: its first mentions do not count
            continue
        sentences.append(sentence)
        words += _words(sentence)
    # Some stories end on a stock line of wire copy.
    closer = _render(rng.choice(CLOSERS), slots, rng)
    if rng.random() < 0.25 and len(sentences) < MAX_SENTENCES and words < MAX_WORDS - 8:
        sentences.append(closer)
    return {"id": f"doc_{index:04d}", "text": " ".join(sentences), "published": str(published)}


def _words(text: str) -> int:
    return len(text.split())


_ALTERNATIVES = re.compile(r"\[([^\[\]]*)\]")


def _render(template: str, slots: _Slots, rng: random.Random) -> str:
    chosen = _ALTERNATIVES.sub(lambda match: rng.choice(match.group(1).split("|")), template)
    text = chosen.format_map(slots)
    if not text.endswith((".", "?", "!", '"')):
        # Templates ending on a name leave the full stop to us: "by Norvale Corp." takes
        # none after the abbreviation, as in print.
        text += "."
    return text[0].upper() + text[1:]


class _Slots:
    """Template values; a person's first mention gives the full name, later ones the
    surname, whichever of `pN` and `pN_last` the template asks for."""

    def __init__(self, values: dict[str, str]) -> None:
        self.values = values
        self.mentioned: set[str] = set()

    def __getitem__(self, key: str) -> str:
        person = key.removesuffix("_last")
        if person in _PEOPLE:
            if person in self.mentioned:
                return self.values[person + "_last"]
            self.mentioned.add(person)
            return self.values[person]
        return self.values[key]


_PEOPLE = ("p1", "p2", "p3", "p4")


def _draw_cast(rng: random.Random, published: date) -> dict[str, str]:
    values: dict[str, str] = {}
    surnames = rng.sample(SURNAMES, len(_PEOPLE))
    for key, surname in zip(_PEOPLE, surnames, strict=True):
        female = rng.random() < 0.5
        first = rng.choice(FEMALE_NAMES if female else MALE_NAMES)
        values[key] = f"{first} {surname}"
        values[key + "_last"] = surname
        values[key + "_he"] = "she" if female else "he"
        values[key + "_his"] = "her" if female else "his"
    values.update(_companies(rng))
    values.update(_places(rng))
    values.update(_dates(rng, published))
    values.update(_amounts(rng))
    values.update(_sides(rng, values["city"], values["city2"]))
    return values


def _companies(rng: random.Random) -> dict[str, str]:
    values: dict[str, str] = {}
    stems = rng.sample(COMPANY_STEMS, 3)
    for number, stem in enumerate(stems, start=1):
        suffix, sector, product = rng.choice(COMPANY_KINDS)
        values[f"co{number}"] = f"{stem} {suffix}"
        values[f"co{number}_sector"] = sector
        values[f"co{number}_product"] = product
        values[f"co{number}_legal"] = f"{stem} {suffix} {rng.choice(LEGAL_FORMS)}"
    values["new_product"] = rng.choice(NEW_PRODUCTS)
    return values


def _places(rng: random.Random) -> dict[str, str]:
    city, country = rng.choice(PLACES)
    near = [c for c, k in PLACES if k == country and c != city]
    elsewhere = [place for place in PLACES if place[1] != country]
    city2, country2 = rng.choice(elsewhere)
    return {
        "city": city,
        "country": country,
        "city_near": near[0] if near else "the surrounding towns",
        "city2": city2,
        "country2": country2,
        "city3": rng.choice([c for c, _ in PLACES if c not in (city, city2)]),
    }


def _dates(rng: random.Random, published: date) -> dict[str, str]:
    happened = published - timedelta(days=rng.randrange(6))
    later = happened + timedelta(days=rng.randint(1, 5))
    past = _month_shift(published, -rng.randint(2, 14))
    future = _month_shift(published, rng.randint(6, 18))
    return {
        "on_day": f"on {happened:%A}",
        "day1": f"{happened:%A}",
        "day2": f"{later:%A}",
        "month_past": past,
        "month_next": MONTHS[published.month % 12],
        "month_future": future,
        "year": str(published.year),
        "year_prev": str(published.year - rng.randint(1, 4)),
        "year_next": str(published.year + rng.randint(1, 5)),
        "founded": str(rng.randint(1978, 2016)),
        "founded_recent": str(published.year - rng.randint(2, 9)),
        "year_old": str(rng.randint(1952, 2008)),
        "day_of_month": str(rng.randint(1, 28)),
        "quarter": rng.choice(QUARTERS),
    }


def _month_shift(day: date, months: int) -> str:
    total = day.year * 12 + day.month - 1 + months
    return f"{MONTHS[total % 12]} {total // 12}"


def _amounts(rng: random.Random) -> dict[str, str]:
    currency = rng.choice(("$", "$", "€", "£"))
    return {
        "money1": f"{currency}{rng.randint(12, 480) / 10:.1f} billion",
        "money_m": f"{currency}{rng.randint(15, 950)} million",
        "pct1": f"{rng.randint(11, 290) / 10:.1f}%",
        "pct2": f"{rng.randint(5, 95) / 10:.1f}%",
        "pct_vote": f"{rng.randint(410, 680) / 10:.1f}%",
        "pct_turnout": f"{rng.randint(480, 790) / 10:.1f}%",
        "num_word": rng.choice(NUMBER_WORDS),
        "num_small": rng.choice(NUMBER_WORDS[:4]),
        "age": str(rng.randint(24, 67)),
        "age_exec": str(rng.randint(41, 66)),
        "years": str(rng.randint(3, 15)),
        "jobs": f"{rng.randint(2, 90) * 50:,}",
        "homes": f"{rng.randint(12, 400) * 100:,}",
        "crowd": f"{rng.randint(8, 75) * 1000:,}",
        "dead": rng.choice(NUMBER_WORDS),
        "km": str(rng.randint(120, 1400)),
        "kmh": str(rng.randint(11, 24) * 10),
        "cents": str(rng.randint(5, 95)),
        "minute": str(rng.randint(4, 39)),
        "votes_for": str(rng.randint(180, 260)),
        "votes_against": str(rng.randint(60, 170)),
    }


def _sides(rng: random.Random, city: str, city2: str) -> dict[str, str]:
    """Roles, parties, teams and the like."""
    minister_role = rng.choice(MINISTER_ROLES)
    parties = rng.sample(PARTIES, 2)
    nicknames = rng.sample(TEAM_NICKNAMES, 3)
    third = rng.choice([c for c, _ in PLACES if c not in (city, city2)])
    winner, loser = rng.randint(1, 4), rng.randint(0, 3)
    return {
        "minister_role": minister_role,
        "minister_title": minister_role.title(),
        "host_title": rng.choice(HOST_TITLES),
        "regional_title": rng.choice(REGIONAL_TITLES),
        "party1": parties[0],
        "party2": parties[1],
        "team1": f"{city} {nicknames[0]}",
        "team2": f"{city2} {nicknames[1]}",
        "team3": f"{third} {nicknames[2]}",
        "score": f"{max(winner, loser + 1)}-{loser}",
        "storm": f"Storm {rng.choice(STORM_NAMES)}",
        "crime": rng.choice(CRIMES),
        "ministry": rng.choice(MINISTRIES),
    }
